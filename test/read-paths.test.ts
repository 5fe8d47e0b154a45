// Linearizable reads on their way through a core and a node: read ids that outlive a node's life,
// and a follower's lease acknowledgement judged by a clock that a pause left behind.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { createNode } from '../src/index.js';
import { MultiPaxos } from '../src/protocol/multipaxos/index.js';
import { MsgType, type Message, type ReadIndex } from '../src/protocol/messages.js';
import { defaultConfig, type Ready, type Restored } from '../src/protocol/types.js';
import { loadKernels } from '../src/kernels/index.js';
import { Prng } from '../src/sim/prng.js';
import { electionNow } from './multipaxos-election.js';

const k = loadKernels('js');
const peers = [1, 2, 3];

/** Every Ready the core has, advanced at once (an instant disk). */
const drain = (n: MultiPaxos): Ready[] => {
  const out: Ready[] = [];
  while (n.hasReady()) {
    const rd = n.ready();
    n.advance(rd);
    out.push(rd);
  }
  return out;
};

// The node numbers its reads from 1 in every life (src/node: nextReadId). A ReadIndexReply to a read
// of the life before a restart can arrive after it, and must not answer the new read that took the
// same id: its index is what the leader had chosen before the new read began.
test('multipaxos: a ReadIndexReply meant for an earlier life of a follower answers no read of this life', () => {
  const b = k.ballotPack(1, 1);
  const restored: Restored = { hardState: { ballot: b, vote: 0 }, records: [], chosenPrefix: 1, appliedPrefix: 1, snapshot: null, rejoining: false };
  const heartbeat = (to: number, chosenPrefix: number): Message => ({ type: MsgType.Heartbeat, from: 1, to, ballot: b, chosenPrefix, seq: 1 });
  const askOf = (rds: Ready[]): ReadIndex => {
    const m = rds.flatMap((rd) => rd.messages).find((x) => x.type === MsgType.ReadIndex);
    assert.ok(m !== undefined, 'the follower asks the leader');
    return m as ReadIndex;
  };

  // First life: node 2 follows node 1 and asks it about its read 1.
  const first = new MultiPaxos({ config: defaultConfig(2, peers), kernels: k, rng: new Prng(2), restored, incarnation: 1 });
  first.step(heartbeat(2, 1));
  drain(first);
  first.read(1, 'quorum');
  const old = askOf(drain(first));

  // Followers' requests use even readIds (MsgType.ReadIndex): the node brings its clock up to date
  // before it steps one, so that it answers from a lease judged by the time as it is.
  assert.equal(old.readId % 2, 0, `read 1 was asked with the odd readId ${old.readId}`);

  // Second life (another incarnation, as every start of a node draws): its read 1 is a new read,
  // begun after node 1 chose slots 1..10.
  const second = new MultiPaxos({ config: defaultConfig(2, peers), kernels: k, rng: new Prng(22), restored, incarnation: 2 });
  second.step(heartbeat(2, 11));
  drain(second);
  second.read(1, 'quorum');
  const ask = askOf(drain(second));

  // The leader's answer to the first life's read arrives now: nothing was chosen when it was asked.
  second.step({ type: MsgType.ReadIndexReply, from: 1, to: 2, readId: old.readId, index: 0, ok: true });
  const answered = drain(second).flatMap((rd) => rd.reads).map((r) => r.id);
  assert.deepEqual(answered, [], 'read 1 of the second life was answered by the first life\'s reply (index 0), before slots 1..10');

  // The answer to its own request does count.
  second.step({ type: MsgType.ReadIndexReply, from: 1, to: 2, readId: ask.readId, index: 10, ok: true });
  drain(second);
  assert.equal(second.status().appliedPrefix, 1, 'nothing applied yet: the read waits for slots 1..10');
  assert.deepEqual(drain(second).flatMap((rd) => rd.reads), []);
});

// A leader's lease runs from when it sent the heartbeat a quorum acknowledged; it rests on each
// acknowledging follower promising nobody else for an election timeout after it heard that
// heartbeat (leader stickiness). After its event loop was held up, a follower stepped the
// heartbeats that waited in its socket before the ticks that fell due while it was held up: those
// old ticks then counted as quiet time after the heartbeat, and a Prepare that came a moment
// later was promised at once, while the leader still trusted its lease. Port 27101 (27102-27103
// are never dialled successfully).
test('after its loop was held up, a follower that just acknowledged a heartbeat promises no other candidate', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-read-paths-'));
  const node = await createNode({
    id: 1, peers: '1=127.0.0.1:27101,2=127.0.0.1:27102,3=127.0.0.1:27103', dataDir: dir, tickMs: 10, newCluster: true,
    stateMachine: { apply: () => 0, snapshot: () => new Uint8Array(0), restore: () => {} }, logger: pino({ level: 'silent' }),
  });
  try {
    const inner = node as unknown as { onMessage(m: Message): void; catchUpTicks(): void };
    await new Promise((r) => setTimeout(r, 30));
    const until = performance.now() + 300;
    while (performance.now() < until) { /* the event loop is held up (a snapshot, a long GC) */ }
    // Node 2 leads at a ballot above any node 1 can have reached; its heartbeat waited in the socket.
    const leaderBallot = k.ballotPack(1000, 2);
    inner.onMessage({ type: MsgType.Heartbeat, from: 2, to: 1, ballot: leaderBallot, chosenPrefix: 1, seq: 1 });
    assert.equal(node.status().ballot, leaderBallot, 'node 1 follows node 2');
    // The tick timer fires at once (the ~30 ticks due), then node 3's Prepare arrives.
    inner.catchUpTicks();
    inner.onMessage({ type: MsgType.Prepare, from: 3, to: 1, ballot: k.ballotPack(2000, 3), fromSlot: 1 });
    assert.equal(node.status().ballot, leaderBallot, 'node 1 promised node 3 within milliseconds of acknowledging node 2\'s heartbeat, inside node 2\'s lease');
  } finally {
    await node.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// A leader without a lease confirms a follower's read with a heartbeat round, keeping at most
// pendingMax reads waiting. Past that it dropped the request without a word, and the follower's
// read hung for two election timeouts instead of failing at once (as a leader's own read does).
test('multipaxos: a leader whose queue of reads to confirm is full refuses a follower\'s read at once', () => {
  const l = new MultiPaxos({ config: { ...defaultConfig(1, peers), pendingMax: 2 }, kernels: k, rng: new Prng(1) });
  electionNow(l);
  const b = l.status().ballot;
  drain(l);
  for (const from of [2, 3]) l.step({ type: MsgType.Promise, from, to: 1, ballot: b, fromSlot: 1, chosenPrefix: 1, coverFrom: 0, more: false, entries: [] });
  assert.equal(l.status().role, 'leader');
  drain(l); // the first heartbeat goes out; nobody acknowledges it, so there is no lease
  for (const readId of [2, 4, 6]) l.step({ type: MsgType.ReadIndex, from: 2, to: 1, readId });
  const replies = drain(l).flatMap((rd) => rd.messages).filter((m) => m.type === MsgType.ReadIndexReply);
  assert.deepEqual(replies, [{ type: MsgType.ReadIndexReply, from: 1, to: 2, readId: 6, index: 0, ok: false }]);
});
