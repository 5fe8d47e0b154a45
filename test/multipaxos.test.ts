// The Multi-Paxos core, one node at a time, against hand-written messages: what it persists,
// what it sends before and after the persist, and what it refuses.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MultiPaxos } from '../src/protocol/multipaxos/index.js';
import { MsgType, type Message } from '../src/protocol/messages.js';
import { defaultConfig, type Ready, type Restored } from '../src/protocol/types.js';
import { loadKernels } from '../src/kernels/index.js';
import { Prng } from '../src/sim/prng.js';

const k = loadKernels('js');
const peers = [1, 2, 3];
const node = (id: number, restored?: Restored, pendingMax = 16): MultiPaxos =>
  new MultiPaxos({ config: { ...defaultConfig(id, peers), pendingMax }, kernels: k, rng: new Prng(id), restored });
const ballot = (round: number, id: number): number => k.ballotPack(round, id);
const value = (...cmds: string[]): Uint8Array => k.encodeBatch(cmds.map((c) => new TextEncoder().encode(c)));

/** Take the Ready (there must be one) and advance it, as a driver whose persist is instant. */
const cycle = (n: MultiPaxos): Ready => {
  assert.ok(n.hasReady(), 'expected a Ready');
  const rd = n.ready();
  n.advance(rd);
  return rd;
};

const ofType = (ms: Message[], t: MsgType): Message[] => ms.filter((m) => m.type === t);

/** Make node 1 leader at round 1 with Promises from 2 and 3 reporting nothing. */
const leader = (pendingMax = 16): MultiPaxos => {
  const n = node(1, undefined, pendingMax);
  while (n.status().role === 'follower') n.tick();
  const b = n.status().ballot;
  cycle(n);
  for (const from of [2, 3]) n.step({ type: MsgType.Promise, from, to: 1, ballot: b, fromSlot: 1, chosenPrefix: 1, entries: [] });
  assert.equal(n.status().role, 'leader');
  cycle(n);
  return n;
};

test('an acceptor persists its promise before the Promise leaves (messagesAfterPersist)', () => {
  const n = node(2);
  n.step({ type: MsgType.Prepare, from: 1, to: 2, ballot: ballot(1, 1), fromSlot: 1 });
  const rd = cycle(n);
  assert.deepEqual(rd.hardState, { ballot: ballot(1, 1), vote: 0 });
  assert.equal(ofType(rd.messages, MsgType.Promise).length, 0);
  assert.equal(ofType(rd.messagesAfterPersist, MsgType.Promise).length, 1);
});

test('an acceptor accepts a hole (slot 5 before 1..4), persisting the record before Accepted leaves', () => {
  const n = node(2);
  const b = ballot(1, 1);
  n.step({ type: MsgType.Accept, from: 1, to: 2, ballot: b, chosenPrefix: 1, entries: [{ slot: 5, ballot: b, value: value('x') }] });
  const rd = cycle(n);
  assert.deepEqual(rd.records.map((r) => [r.position, r.ballot]), [[5, b]]);
  assert.deepEqual(ofType(rd.messagesAfterPersist, MsgType.Accepted).map((m) => m.type === MsgType.Accepted && [m.firstSlot, m.count]), [[5, 1]]);
  assert.equal(n.status().leader, 1);
});

test('an acceptor Nacks an Accept below its promise with the promised ballot and writes nothing', () => {
  const n = node(2);
  n.step({ type: MsgType.Prepare, from: 3, to: 2, ballot: ballot(2, 3), fromSlot: 1 });
  cycle(n);
  n.step({ type: MsgType.Accept, from: 1, to: 2, ballot: ballot(1, 1), chosenPrefix: 1, entries: [{ slot: 1, ballot: ballot(1, 1), value: value('x') }] });
  const rd = cycle(n);
  assert.equal(rd.records.length, 0);
  const nacks = ofType(rd.messages, MsgType.Nack);
  assert.equal(nacks.length, 1);
  assert.equal(nacks[0].type === MsgType.Nack && nacks[0].ballot, ballot(2, 3));
});

test('a Commit marks a slot chosen only where the learner accepted it at the Commit\'s ballot; else it fetches', () => {
  const n = node(2);
  const b1 = ballot(1, 1);
  const b2 = ballot(2, 3);
  // Accepted x at b1; then a leader at b2 says slot 1 is chosen (its value may differ from x).
  n.step({ type: MsgType.Accept, from: 1, to: 2, ballot: b1, chosenPrefix: 1, entries: [{ slot: 1, ballot: b1, value: value('x') }] });
  cycle(n);
  n.step({ type: MsgType.Commit, from: 3, to: 2, ballot: b2, firstSlot: 1, count: 1, chosenPrefix: 2 });
  let rd = cycle(n);
  assert.equal(rd.apply.length, 0, 'x must not be applied: it was accepted at another ballot');
  n.tick();
  n.tick();
  rd = cycle(n);
  const req = ofType(rd.messages, MsgType.LearnRequest);
  assert.equal(req.length, 1);
  assert.equal(req[0].to, 3);
  n.step({ type: MsgType.LearnReply, from: 3, to: 2, chosenPrefix: 2, entries: [{ slot: 1, ballot: b2, value: value('y') }] });
  rd = cycle(n);
  assert.deepEqual(rd.apply.map((a) => [a.position, a.value]), [[1, value('y')]]);
  assert.equal(rd.chosenPrefix, 2);
});

test('a Commit at the ballot the learner accepted at applies the chosen prefix in order', () => {
  const n = node(2);
  const b = ballot(1, 1);
  n.step({ type: MsgType.Accept, from: 1, to: 2, ballot: b, chosenPrefix: 1, entries: [{ slot: 1, ballot: b, value: value('a') }, { slot: 2, ballot: b, value: value('b') }] });
  cycle(n);
  n.step({ type: MsgType.Commit, from: 1, to: 2, ballot: b, firstSlot: 2, count: 1, chosenPrefix: 1 });
  assert.equal(n.hasReady(), false, 'slot 2 is chosen but slot 1 is a hole: nothing applies');
  assert.equal(n.status().holes, 1);
  n.step({ type: MsgType.Commit, from: 1, to: 2, ballot: b, firstSlot: 1, count: 1, chosenPrefix: 3 });
  const rd = cycle(n);
  assert.deepEqual(rd.apply.map((a) => a.position), [1, 2]);
});

test('a new leader re-proposes the highest-ballot value reported and a no-op for a hole', () => {
  // Node 1 itself accepted "new" at slot 1 at a higher ballot than the "old" node 2 reports.
  const restored: Restored = { hardState: { ballot: ballot(0, 3), vote: 0 }, records: [{ position: 1, ballot: ballot(0, 3), value: value('new') }], chosenPrefix: 1, appliedPrefix: 1, snapshot: null };
  const n = node(1, restored);
  while (n.status().role === 'follower') n.tick();
  const b = n.status().ballot;
  cycle(n);
  n.step({
    type: MsgType.Promise, from: 2, to: 1, ballot: b, fromSlot: 1, chosenPrefix: 1,
    entries: [{ slot: 1, ballot: ballot(0, 2), value: value('old') }, { slot: 3, ballot: ballot(0, 2), value: value('z') }],
  });
  assert.equal(n.status().role, 'leader');
  const rd = cycle(n);
  const accept = ofType(rd.messages, MsgType.Accept)[0];
  assert.ok(accept && accept.type === MsgType.Accept);
  assert.deepEqual(accept.entries.map((e) => [e.slot, e.value]), [[1, value('new')], [2, value()], [3, value('z')]]);
});

test('the leader keeps at most `pipeline` slots in flight; the rest wait as pending commands', () => {
  const n = leader(64);
  for (let i = 0; i < 40; i++) assert.equal(n.propose([value(`c${i}`)]), 'proposed');
  // Each command is its own slot only if proposals are flushed one by one; here they batch.
  const rd = cycle(n);
  const slots = ofType(rd.messages, MsgType.Accept).filter((m) => m.to === 2).flatMap((m) => (m.type === MsgType.Accept ? m.entries : []));
  assert.ok(slots.length >= 1 && slots.length <= defaultConfig(1, peers).pipeline);
  assert.equal(n.status().inFlight, slots.length);
});

test('a follower forwards a proposal to the leader it knows; without one it answers no-leader', () => {
  const n = node(2);
  assert.equal(n.propose([value('x')]), 'no-leader');
  n.step({ type: MsgType.Heartbeat, from: 1, to: 2, ballot: ballot(1, 1), chosenPrefix: 1, seq: 1 });
  assert.equal(n.propose([value('x')]), 'forwarded');
  const rd = cycle(n);
  assert.equal(ofType(rd.messages, MsgType.Propose)[0]?.to, 1);
});

test('a leader refuses proposals beyond pendingMax as full, and queues nothing of them', () => {
  const n = leader();
  const many = Array.from({ length: 17 }, (_, i) => value(`c${i}`));
  assert.equal(n.propose(many), 'full');
  assert.equal(n.status().pending, 0);
});

test('bad input is dropped: strangers, wrong addressee, self-addressed, unknown types change nothing', () => {
  const n = node(2);
  const before = n.status();
  n.step({ type: MsgType.Prepare, from: 9, to: 2, ballot: ballot(5, 9), fromSlot: 1 });
  n.step({ type: MsgType.Prepare, from: 1, to: 3, ballot: ballot(5, 1), fromSlot: 1 });
  n.step({ type: MsgType.Prepare, from: 2, to: 2, ballot: ballot(5, 2), fromSlot: 1 });
  n.step({ type: 99 as MsgType.Prepare, from: 1, to: 2, ballot: ballot(5, 1), fromSlot: 1 });
  // An Accept at a ballot its sender does not own is ignored too.
  n.step({ type: MsgType.Accept, from: 1, to: 2, ballot: ballot(5, 3), chosenPrefix: 1, entries: [{ slot: 1, ballot: ballot(5, 3), value: value('x') }] });
  assert.deepEqual(n.status(), before);
  assert.equal(n.hasReady(), false);
});

test('a restarted node promises nobody until an election timeout has passed (a lease may be live)', () => {
  const restored: Restored = { hardState: { ballot: ballot(1, 1), vote: 0 }, records: [], chosenPrefix: 1, appliedPrefix: 1, snapshot: null };
  const n = node(2, restored);
  n.step({ type: MsgType.Prepare, from: 3, to: 2, ballot: ballot(2, 3), fromSlot: 1 });
  assert.equal(n.hasReady(), false, 'no Promise while quiet');
  for (let i = 0; i < defaultConfig(2, peers).electionTicksMin; i++) n.tick();
  n.step({ type: MsgType.Prepare, from: 3, to: 2, ballot: ballot(2, 3), fromSlot: 1 });
  const rd = cycle(n);
  assert.equal(ofType(rd.messagesAfterPersist, MsgType.Promise).length, 1);
});

test('a restarted node re-applies its persisted chosen prefix from its records', () => {
  const b = ballot(1, 1);
  const restored: Restored = {
    hardState: { ballot: b, vote: 0 },
    records: [{ position: 1, ballot: b, value: value('a') }, { position: 2, ballot: b, value: value('b') }, { position: 3, ballot: b, value: value('c') }],
    chosenPrefix: 3,
    appliedPrefix: 1,
    snapshot: null,
  };
  const rd = cycle(node(2, restored));
  assert.deepEqual(rd.apply.map((a) => a.position), [1, 2]);
});

test('a lease read is refused without a lease, served while a quorum acknowledged a recent heartbeat, refused after', () => {
  const n = leader();
  n.read(1, 'lease');
  assert.deepEqual(cycle(n).readsFailed, [1], 'no heartbeat acknowledged yet');
  n.step({ type: MsgType.HeartbeatAck, from: 2, to: 1, ballot: n.status().ballot, chosenPrefix: 1, seq: 1 });
  n.read(2, 'lease');
  assert.deepEqual(cycle(n).reads, [{ id: 2, index: 0 }]);
  const c = defaultConfig(1, peers);
  for (let i = 0; i < c.leaseTicks - c.leaseDriftTicks; i++) { n.tick(); if (n.hasReady()) cycle(n); }
  n.read(3, 'lease');
  assert.deepEqual(cycle(n).readsFailed, [3], 'the lease ran out: no acknowledgement for leaseTicks - drift');
});

test('a lagging node elected leader proposes only above the chosen prefix a Promise reported, and fetches below it', () => {
  const n = node(1);
  while (n.status().role === 'follower') n.tick();
  const b = n.status().ballot;
  cycle(n);
  // Node 2 knows slots 1..4 chosen and reports only what lies above: slot 5, accepted at an old ballot.
  n.step({ type: MsgType.Promise, from: 2, to: 1, ballot: b, fromSlot: 1, chosenPrefix: 5, entries: [{ slot: 5, ballot: ballot(0, 2), value: value('e') }] });
  assert.equal(n.status().role, 'leader');
  let rd = cycle(n);
  const accept = ofType(rd.messages, MsgType.Accept)[0];
  assert.ok(accept && accept.type === MsgType.Accept);
  assert.deepEqual(accept.entries.map((e) => e.slot), [5], 'slots 1..4 are chosen already: not proposed again');
  n.tick();
  n.tick();
  rd = cycle(n);
  const req = ofType(rd.messages, MsgType.LearnRequest)[0];
  assert.ok(req && req.type === MsgType.LearnRequest && req.firstSlot === 1 && req.count === 4, 'fetches 1..4');
  n.step({ type: MsgType.LearnReply, from: 2, to: 1, chosenPrefix: 5, entries: [1, 2, 3, 4].map((s) => ({ slot: s, ballot: ballot(0, 2), value: value(`v${s}`) })) });
  // A LearnReply cannot mark a slot of the leader's own reign chosen.
  n.step({ type: MsgType.LearnReply, from: 3, to: 1, chosenPrefix: 6, entries: [{ slot: 5, ballot: ballot(0, 3), value: value('other') }] });
  rd = cycle(n);
  assert.deepEqual(rd.apply.map((a) => a.position), [1, 2, 3, 4]);
  assert.equal(n.status().chosenPrefix, 5);
});
