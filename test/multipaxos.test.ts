// The Multi-Paxos core, one node at a time, against hand-written messages: what it persists,
// what it sends before and after the persist, and what it refuses.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MultiPaxos } from '../src/protocol/multipaxos/index.js';
import { MsgType, type Message } from '../src/protocol/messages.js';
import { defaultConfig, type Ready, type Restored } from '../src/protocol/types.js';
import { loadKernels } from '../src/kernels/index.js';
import { Prng } from '../src/sim/prng.js';
import { AppliedValues, clusterFromCommand, parseScenario } from '../src/sim/scenario.js';
import { readFileSync } from 'node:fs';
import { electionNow } from './multipaxos-election.js';

const k = loadKernels('js');
const peers = [1, 2, 3];
const node = (id: number, restored?: Restored, pendingMax = 16, members = peers): MultiPaxos =>
  new MultiPaxos({ config: { ...defaultConfig(id, members), pendingMax }, kernels: k, rng: new Prng(id), restored });
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
/** Everything a Ready sends, at once or after its persist. */
const sent = (rd: Ready): Message[] => [...rd.messages, ...rd.messagesAfterPersist];

/** Make node 1 leader at round 1 with Promises from 2 and 3 reporting nothing. */
/** Node 1, leader at its first ballot by the Promises of nodes 2 and 3 (a majority of 3 or 5 members). */
const leader = (pendingMax = 16, members = peers): MultiPaxos => {
  const n = node(1, undefined, pendingMax, members);
  electionNow(n)
  const b = n.status().ballot;
  cycle(n);
  for (const from of [2, 3]) n.step({ type: MsgType.Promise, from, to: 1, ballot: b, fromSlot: 1, chosenPrefix: 1, coverFrom: 0, more: false, entries: [] });
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

test('a learner takes a fetched chosen value over its own accept of another value at a higher ballot, keeping the higher ballot on the record', () => {
  // A stale leader re-proposes a chosen value at its own lower ballot and serves it with that ballot.
  const n = node(2);
  const high = ballot(3, 3);
  const low = ballot(2, 1);
  n.step({ type: MsgType.Accept, from: 3, to: 2, ballot: high, chosenPrefix: 1, entries: [{ slot: 1, ballot: high, value: value('w') }] });
  cycle(n);
  n.step({ type: MsgType.LearnReply, from: 1, to: 2, chosenPrefix: 2, entries: [{ slot: 1, ballot: low, value: value('v') }] });
  const rd = cycle(n);
  assert.deepEqual(rd.apply.map((a) => [a.position, a.value]), [[1, value('v')]]);
  assert.deepEqual(rd.records.map((r) => [r.position, r.ballot, r.value]), [[1, high, value('v')]]);
});

test('a chosen slot keeps its value and its ballot: a delayed Accept of another value from an older leader is refused; one of the chosen value is answered without lowering the record', () => {
  // Node 2 heard leader 1 at b1 (its promise), missed slot 1, and fetched it as chosen (y, chosen
  // at b2 by others): fetching raises no promise. Leader 1's Accept of x for slot 1, delayed past
  // all that, is at a ballot node 2 has not promised against.
  const n = node(2);
  const b1 = ballot(1, 1);
  const b2 = ballot(2, 3);
  n.step({ type: MsgType.Heartbeat, from: 1, to: 2, ballot: b1, chosenPrefix: 1, seq: 1 });
  cycle(n);
  n.step({ type: MsgType.LearnReply, from: 3, to: 2, chosenPrefix: 2, entries: [{ slot: 1, ballot: b2, value: value('y') }] });
  let rd = cycle(n);
  assert.deepEqual(rd.apply.map((a) => [a.position, a.value]), [[1, value('y')]]);
  assert.equal(n.status().ballot, b1, 'the fetch raised no promise');

  n.step({ type: MsgType.Accept, from: 1, to: 2, ballot: b1, chosenPrefix: 1, entries: [{ slot: 1, ballot: b1, value: value('x') }, { slot: 2, ballot: b1, value: value('z') }] });
  rd = cycle(n);
  assert.deepEqual(rd.records.map((r) => [r.position, r.value]), [[2, value('z')]], 'slot 1 keeps y; slot 2, not chosen, takes z');
  const acks = ofType(sent(rd), MsgType.Accepted);
  assert.deepEqual(acks.map((m) => m.type === MsgType.Accepted && [m.firstSlot, m.count]), [[2, 1]]);

  // The same leader's Accept of y itself (it proposed y first; a later leader chose it): answered,
  // but the record stays at b2. Lowered to b1, it would tell a learner holding its own accept of
  // another value at a ballot between b1 and b2 to keep that value as chosen.
  n.step({ type: MsgType.Accept, from: 1, to: 2, ballot: b1, chosenPrefix: 1, entries: [{ slot: 1, ballot: b1, value: value('y') }] });
  rd = cycle(n);
  assert.deepEqual(rd.records, []);
  assert.deepEqual(ofType(sent(rd), MsgType.Accepted).map((m) => m.type === MsgType.Accepted && [m.ballot, m.firstSlot, m.count]), [[b1, 1, 1]]);

  // A learner asking node 2 gets y, the chosen value, at the ballot it was chosen at.
  n.step({ type: MsgType.LearnRequest, from: 3, to: 2, firstSlot: 1, count: 1 });
  rd = cycle(n);
  const reply = ofType(rd.messages, MsgType.LearnReply);
  assert.deepEqual(reply.map((m) => m.type === MsgType.LearnReply && m.entries.map((e) => [e.slot, e.ballot, e.value])), [[[1, b2, value('y')]]]);

  // A later leader re-proposing the chosen value (its recovery) is answered as before.
  const b3 = ballot(3, 3);
  n.step({ type: MsgType.Accept, from: 3, to: 2, ballot: b3, chosenPrefix: 1, entries: [{ slot: 1, ballot: b3, value: value('y') }] });
  rd = cycle(n);
  assert.deepEqual(rd.records.map((r) => [r.position, r.ballot, r.value]), [[1, b3, value('y')]]);
  assert.deepEqual(ofType(sent(rd), MsgType.Accepted).map((m) => m.type === MsgType.Accepted && [m.firstSlot, m.count]), [[1, 1]]);
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
  const restored: Restored = { hardState: { ballot: ballot(0, 3), vote: 0 }, records: [{ position: 1, ballot: ballot(0, 3), value: value('new') }], chosenPrefix: 1, appliedPrefix: 1, snapshot: null, rejoining: false };
  const n = node(1, restored);
  electionNow(n)
  const b = n.status().ballot;
  cycle(n);
  n.step({
    type: MsgType.Promise, from: 2, to: 1, ballot: b, fromSlot: 1, chosenPrefix: 1, coverFrom: 0, more: false,
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
  const restored: Restored = { hardState: { ballot: ballot(1, 1), vote: 0 }, records: [], chosenPrefix: 1, appliedPrefix: 1, snapshot: null, rejoining: false };
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
    rejoining: false,
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

test('a read\'s index covers the slots chosen above a hole: it is not answered by the Ready that fills the hole but applies only part of them', () => {
  // A follower that knew the hole chosen from an earlier reign applies the slots above it at once.
  const n = new MultiPaxos({ config: { ...defaultConfig(1, peers), pipeline: 2048, batchMax: 1, pendingMax: 4096 }, kernels: k, rng: new Prng(1) });
  electionNow(n);
  const b = n.status().ballot;
  cycle(n);
  for (const from of [2, 3]) n.step({ type: MsgType.Promise, from, to: 1, ballot: b, fromSlot: 1, chosenPrefix: 1, coverFrom: 0, more: false, entries: [] });
  cycle(n);
  n.step({ type: MsgType.HeartbeatAck, from: 2, to: 1, ballot: b, chosenPrefix: 1, seq: 1 });
  n.propose(Array.from({ length: 1100 }, (_, i) => enc.encode(`w${i}`)));
  cycle(n);
  n.step({ type: MsgType.Accepted, from: 2, to: 1, ballot: b, firstSlot: 2, count: 1099 });
  assert.equal(n.status().chosenPrefix, 1, 'slot 1 is a hole; 2..1100 are chosen');
  n.read(5, 'lease');
  let rd = cycle(n);
  assert.deepEqual([rd.reads, rd.readsFailed], [[], []], 'the read waits');
  n.step({ type: MsgType.Accepted, from: 2, to: 1, ballot: b, firstSlot: 1, count: 1 });
  rd = cycle(n);
  assert.ok(rd.apply.length < 1100, `one Ready applies part of the slots (${rd.apply.length})`);
  assert.deepEqual(rd.reads, [], 'not answered before slot 1100 is applied');
  rd = cycle(n);
  assert.equal(rd.apply[rd.apply.length - 1].position, 1100);
  assert.deepEqual(rd.reads, [{ id: 5, index: 1100 }]);
});

test('a leader whose followers\' answers stall for 15 ticks at a time (a TCP retransmit) keeps leading; with none for electionTicksMax it steps down', () => {
  const n = leader();
  const b = n.status().ballot;
  let seq = 0;
  const tickOnce = (): void => {
    n.tick();
    if (!n.hasReady()) return;
    for (const m of sent(cycle(n))) if (m.type === MsgType.Heartbeat) seq = Math.max(seq, m.seq);
  };
  for (let stall = 0; stall < 4; stall++) {
    for (let t = 0; t < 15; t++) tickOnce();
    // The stall ends: the answers held back arrive, the newest for the last heartbeat sent.
    n.step({ type: MsgType.HeartbeatAck, from: 2, to: 1, ballot: b, chosenPrefix: 1, seq });
    assert.equal(n.status().role, 'leader', `after stall ${stall + 1}`);
  }
  assert.ok(seq > 0, 'the leader sent heartbeats');
  for (let t = 0; t < defaultConfig(1, peers).electionTicksMax + 2; t++) tickOnce();
  assert.equal(n.status().role, 'follower', 'no answer for electionTicksMax: it stepped down');
});

test('a restarted follower promises nobody for an election timeout, even after a late message from an older leader (it may have acked a lease it forgot)', () => {
  const enc = new TextEncoder();
  const n1 = node(1); const n2 = node(2); let n3 = node(3);
  const held: Message[] = []; // messages delayed in the network
  const out = (n: MultiPaxos, durable = true): Message[] => {
    const ms: Message[] = [];
    while (n.hasReady()) { const rd = n.ready(); ms.push(...rd.messages); if (!durable) return ms; ms.push(...rd.messagesAfterPersist); n.advance(rd); }
    return ms;
  };
  // 1. Node 1 leads at b0 with node 3's promise. A Heartbeat 1->3 at b0 is held in the network.
  electionNow(n1)
  const b0 = n1.status().ballot;
  for (const m of out(n1)) if (m.to === 3) n3.step(m);
  for (const m of out(n3)) if (m.to === 1) n1.step(m);
  assert.equal(n1.status().role, 'leader');
  for (const m of out(n1)) if (m.to === 3 && m.type === MsgType.Heartbeat) held.push(m);
  assert.equal(held.length, 1);
  // 2. Node 1 hears no acks and steps down after electionTicksMax.
  for (let i = 0; i < 25 && n1.status().role === 'leader'; i++) { n1.tick(); out(n1); }
  assert.equal(n1.status().role, 'follower');
  // 3. Node 2 campaigns at b1 and is elected with node 1's promise (node 3 does not hear it).
  electionNow(n2)
  const b1 = n2.status().ballot;
  assert.ok(b1 > b0);
  for (const m of out(n2)) if (m.to === 1 && m.type === MsgType.Prepare) n1.step(m);
  for (const m of out(n1)) if (m.to === 2) n2.step(m);
  assert.equal(n2.status().role, 'leader');
  out(n2); // its first heartbeats are lost
  // 4. Node 1 hears nothing more from node 2 (2->1 cut), times out, campaigns at b2 > b1.
  //    Its Prepare to node 2 is lost (1->2 cut); the one to node 3 is delayed.
  electionNow(n1, () => { n2.tick(); out(n2); });
  const b2 = n1.status().ballot;
  assert.ok(b2 > b1);
  for (const m of out(n1)) if (m.to === 3 && m.type === MsgType.Prepare) held.push(m);
  // 5. Node 2's next heartbeat reaches node 3, which acks at once; node 2 now holds a lease.
  n2.tick();
  const hb = out(n2).filter((m) => m.to === 3 && m.type === MsgType.Heartbeat);
  for (const m of hb) n3.step(m);
  for (const m of out(n3, false)) if (m.to === 2) n2.step(m); // node 3's Ready (promise b1) is not yet durable
  assert.equal(n2.status().role, 'leader');
  // 6. Node 3 crashes before that persist and restarts from what it persisted (its promise of b0).
  n3 = new MultiPaxos({ config: { ...defaultConfig(3, peers), pendingMax: 16 }, kernels: k, rng: new Prng(33),
    restored: { hardState: { ballot: b0, vote: 0 }, records: [], chosenPrefix: 1, appliedPrefix: 1, snapshot: null, rejoining: false } });
  // 7. The held messages from node 1 arrive: the stale Heartbeat at b0, then the Prepare at b2.
  for (const m of held) n3.step(m);
  const answers = out(n3);
  assert.equal(answers.filter((m) => m.type === MsgType.Promise && m.ballot === b2).length, 0, 'node 3 promised b2 within its quiet time');
  for (const m of answers) if (m.to === 1) n1.step(m);
  // Node 1 (if leader) writes W with node 3.
  n1.propose([enc.encode('W')]);
  let w: boolean;
  for (let i = 0; i < 4; i++) {
    for (const m of out(n1)) if (m.to === 3) n3.step(m);
    for (const m of out(n3)) if (m.to === 1) n1.step(m);
  }
  w = n1.status().appliedPrefix > 1;
  // 8. A lease read at node 2, started after W was acknowledged.
  n2.read(77, 'lease');
  const rd = n2.ready(); n2.advance(rd);
  assert.ok(!(w && rd.reads.some((r) => r.id === 77) && n2.status().appliedPrefix <= 1), 'lease read at node 2 misses W, acknowledged before the read began');
});

test('a lagging node elected leader proposes only above the chosen prefix a Promise reported, and fetches below it', () => {
  const n = node(1);
  electionNow(n)
  const b = n.status().ballot;
  cycle(n);
  // Node 2 knows slots 1..4 chosen and reports only what lies above: slot 5, accepted at an old ballot.
  n.step({ type: MsgType.Promise, from: 2, to: 1, ballot: b, fromSlot: 1, chosenPrefix: 5, coverFrom: 0, more: false, entries: [{ slot: 5, ballot: ballot(0, 2), value: value('e') }] });
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

// ---------------------------------------------------------------- snapshots

const enc = new TextEncoder();
const snapBytes = (n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 7 + 1) & 0xff);
const chunkCfg = { snapshotChunkBytes: 4 };
const nodeWith = (id: number, extra: Partial<ReturnType<typeof defaultConfig>>, restored?: Restored): MultiPaxos =>
  new MultiPaxos({ config: { ...defaultConfig(id, peers), pendingMax: 16, ...extra }, kernels: k, rng: new Prng(id), restored });
const chunk = (from: number, to: number, prefix: number, offset: number, total: number, values: Uint8Array[], b = 0): Message =>
  ({ type: MsgType.SnapshotChunk, from, to, ballot: b, prefix, offset, total, values });

/** Node 2, a follower of leader 1 at round 1, that has applied slots 1..3 (a, b, c). */
const follower3 = (extra: Partial<ReturnType<typeof defaultConfig>> = {}): MultiPaxos => {
  const n = nodeWith(2, extra);
  const b = ballot(1, 1);
  n.step({ type: MsgType.Accept, from: 1, to: 2, ballot: b, chosenPrefix: 4, entries: ['a', 'b', 'c'].map((v, i) => ({ slot: i + 1, ballot: b, value: value(v) })) });
  const rd = cycle(n);
  assert.deepEqual(rd.apply.map((a) => a.position), [1, 2, 3]);
  return n;
};

test('compact() beyond the applied prefix is a driver bug: it throws', () => {
  const n = follower3();
  assert.throws(() => n.compact(5, enc.encode('x')), /beyond the applied prefix 4/);
});

test('compact() trims the log, hands the snapshot out once (install=false), and ignores an older prefix', () => {
  const n = follower3();
  n.compact(4, enc.encode('abc'));
  assert.equal(n.status().snapshotPrefix, 4);
  const rd = cycle(n);
  assert.deepEqual(rd.snapshot, { prefix: 4, ballot: 0, bytes: enc.encode('abc') });
  assert.equal(rd.install, false);
  n.compact(3, enc.encode('ab'));
  assert.equal(n.hasReady(), false, 'a prefix at or below the snapshot is ignored');
  // A learner asking for trimmed slots gets an offer, not entries; one at most per few ticks.
  n.step({ type: MsgType.LearnRequest, from: 3, to: 2, firstSlot: 1, count: 3 });
  n.step({ type: MsgType.LearnRequest, from: 3, to: 2, firstSlot: 1, count: 3 });
  const out = cycle(n).messages;
  assert.deepEqual(out.map((m) => m.type), [MsgType.SnapshotChunk], 'one offer, the second request rate-limited');
  assert.deepEqual(out[0], chunk(2, 3, 4, 0, 3, [enc.encode('abc')]));
  // At or above the snapshot prefix the LearnReply carries nothing below it.
  n.step({ type: MsgType.LearnRequest, from: 3, to: 2, firstSlot: 4, count: 3 });
  const reply = cycle(n).messages[0];
  assert.ok(reply.type === MsgType.LearnReply && reply.entries.length === 0 && reply.chosenPrefix === 4);
  // An Accept for a trimmed slot is refused silently: no record below the snapshot, no Accepted.
  n.step({ type: MsgType.Accept, from: 1, to: 2, ballot: ballot(1, 1), chosenPrefix: 4, entries: [{ slot: 2, ballot: ballot(1, 1), value: value('z') }] });
  assert.equal(n.hasReady(), false);
});

test('a restart from a snapshot ignores records below it and applies from its prefix', () => {
  const b = ballot(1, 1);
  const restored: Restored = {
    hardState: { ballot: b, vote: 0 },
    records: [1, 2, 3, 4, 5].map((s) => ({ position: s, ballot: b, value: value(`v${s}`) })),
    chosenPrefix: 6, appliedPrefix: 4, snapshot: { prefix: 4, ballot: 0, bytes: enc.encode('v1 v2 v3') }, rejoining: false,
  };
  const n = node(2, restored);
  assert.equal(n.status().snapshotPrefix, 4);
  const rd = cycle(n);
  assert.equal(rd.snapshot, null, 'a restored snapshot is durable already');
  assert.deepEqual(rd.apply.map((a) => a.position), [4, 5]);
  n.step({ type: MsgType.LearnRequest, from: 3, to: 2, firstSlot: 2, count: 4 });
  const offer = cycle(n).messages[0];
  assert.ok(offer.type === MsgType.SnapshotChunk && offer.prefix === 4 && offer.offset === 0);
});

/** Node 2 (chunks of 4 bytes) with slot 7 accepted and known chosen, slots 1..6 trimmed at the leader: a snapshot at 7 covers them. */
const laggingTo7 = (): MultiPaxos => {
  const n = nodeWith(2, chunkCfg);
  const b = ballot(1, 1);
  n.step({ type: MsgType.Accept, from: 1, to: 2, ballot: b, chosenPrefix: 1, entries: [{ slot: 7, ballot: b, value: value('g') }] });
  n.step({ type: MsgType.Commit, from: 1, to: 2, ballot: b, firstSlot: 7, count: 1, chosenPrefix: 8 });
  cycle(n);
  return n;
};

test('a lagging follower pulls an offered snapshot chunk by chunk, installs it, then applies above it', () => {
  const n = laggingTo7();
  const bytes = snapBytes(10);
  n.step(chunk(1, 2, 7, 0, 10, [bytes.subarray(0, 4)]));
  let rd = cycle(n);
  assert.deepEqual(rd.messages, [{ type: MsgType.SnapshotRequest, from: 2, to: 1, prefix: 7, offset: 4 }]);
  n.step(chunk(1, 2, 7, 4, 10, [bytes.subarray(4, 8)]));
  cycle(n);
  n.step(chunk(1, 2, 7, 8, 10, [bytes.subarray(8, 10)]));
  rd = cycle(n);
  assert.equal(rd.install, true);
  assert.deepEqual(rd.snapshot, { prefix: 7, ballot: 0, bytes });
  assert.deepEqual(rd.apply.map((a) => a.position), [7], 'apply starts at the prefix');
  assert.ok(rd.records.every((r) => r.position >= 7));
  const s = n.status();
  assert.deepEqual([s.snapshotPrefix, s.chosenPrefix, s.appliedPrefix], [7, 8, 8]);
});

test('a snapshot a peer is pulling stays served when newer ones are taken, until it goes unpulled', () => {
  const n = follower3(chunkCfg);
  const b = ballot(1, 1);
  const first = snapBytes(10);
  const request = (prefix: number, offset: number): Message => ({ type: MsgType.SnapshotRequest, from: 3, to: 2, prefix, offset });
  const chunks = (): Message[] => ofType(cycle(n).messages, MsgType.SnapshotChunk);
  const applyThrough = (slot: number): void => {
    n.step({ type: MsgType.Accept, from: 1, to: 2, ballot: b, chosenPrefix: slot, entries: [{ slot, ballot: b, value: value(`s${slot}`) }] });
    n.step({ type: MsgType.Commit, from: 1, to: 2, ballot: b, firstSlot: slot, count: 1, chosenPrefix: slot + 1 });
    cycle(n);
  };
  n.compact(4, first);
  cycle(n);
  n.step(request(4, 4));
  assert.deepEqual(chunks(), [chunk(2, 3, 4, 4, 10, [first.subarray(4, 8)])]);
  // Two newer snapshots while node 3 pulls the first: its next chunk is still of the first.
  applyThrough(4);
  n.compact(5, enc.encode('abcd'));
  cycle(n);
  applyThrough(5);
  n.compact(6, enc.encode('abcde'));
  cycle(n);
  n.step(request(4, 8));
  assert.deepEqual(chunks(), [chunk(2, 3, 4, 8, 10, [first.subarray(8, 10)])]);
  // The snapshot at 5 was never pulled: it is not held, and a request for it gets an offer of the latest.
  n.step(request(5, 4));
  assert.deepEqual(chunks(), [chunk(2, 3, 6, 0, 5, [enc.encode('abcd')])]);
  // Unpulled for an election timeout, the first is dropped too: an offer of the latest answers.
  for (let i = 0; i < defaultConfig(2, peers).electionTicksMax + 3; i++) { n.tick(); if (n.hasReady()) cycle(n); }
  n.step(request(4, 8));
  assert.deepEqual(chunks(), [chunk(2, 3, 6, 0, 5, [enc.encode('abcd')])]);
});

test('a follower takes chunks longer than its own snapshotChunkBytes: a peer configured apart still finishes its transfer', () => {
  const n = laggingTo7();
  const bytes = snapBytes(10);
  n.step(chunk(1, 2, 7, 0, 10, [bytes.subarray(0, 8)]));
  assert.deepEqual(cycle(n).messages, [{ type: MsgType.SnapshotRequest, from: 2, to: 1, prefix: 7, offset: 8 }]);
  n.step(chunk(1, 2, 7, 8, 10, [bytes.subarray(8, 10)]));
  const rd = cycle(n);
  assert.equal(rd.install, true);
  assert.deepEqual(rd.snapshot, { prefix: 7, ballot: 0, bytes });
});

test('malformed or unexpected snapshot chunks are dropped without a throw and change nothing', () => {
  const n = nodeWith(2, chunkCfg);
  const bytes = snapBytes(10);
  const bad: Message[] = [
    chunk(1, 2, 7, 0, 10, [bytes.subarray(0, 2), bytes.subarray(2, 4)]), // two values
    chunk(1, 2, 7, 0, 10, []),                                           // no value
    chunk(1, 2, 7, 4, 10, [bytes.subarray(4, 8)]),                       // a later chunk of no transfer (unknown prefix)
    chunk(1, 2, 7, 0, 1024 * 1024 * 1024 + 1, [bytes.subarray(0, 4)]),  // total above SNAPSHOT_BYTES_MAX
    chunk(1, 2, 7, 0, 2 ** 24 + 1, [new Uint8Array(2 ** 24 + 1)]),       // longer than SNAPSHOT_CHUNK_BYTES_MAX
    chunk(1, 2, 7, 0, 3, [bytes.subarray(0, 4)]),                        // longer than total
    chunk(1, 2, 1, 0, 10, [bytes.subarray(0, 4)]),                       // prefix 1 covers nothing
    chunk(1, 2, 7, 0, 10, [new Uint8Array(0)]),                          // empty chunk of a non-empty snapshot
    chunk(1, 2, 7, 0, 10, [bytes.subarray(0, 4)], ballot(1, 1)),         // Multi-Paxos snapshots carry ballot 0
    chunk(1, 2, Number.NaN, 0, 10, [bytes.subarray(0, 4)]),              // not a number
    { type: MsgType.SnapshotRequest, from: 1, to: 2, prefix: 7, offset: 0 }, // a request to a node with no snapshot
  ];
  const before = n.status();
  for (const m of bad) assert.doesNotThrow(() => n.step(m));
  assert.deepEqual(n.status(), before);
  assert.equal(n.hasReady(), false, 'nothing to persist or send');

  // A running transfer ignores chunks that do not continue it, then completes unharmed.
  n.step(chunk(1, 2, 7, 0, 10, [bytes.subarray(0, 4)]));
  cycle(n);
  const running: Message[] = [
    chunk(1, 2, 7, 8, 10, [bytes.subarray(8, 10)]),  // wrong offset (a gap)
    chunk(1, 2, 7, 0, 10, [bytes.subarray(0, 4)]),   // the same offer again: not newer
    chunk(3, 2, 7, 4, 10, [bytes.subarray(4, 8)]),   // from a peer that did not offer it
    chunk(1, 2, 9, 4, 10, [bytes.subarray(4, 8)]),   // unknown prefix
    chunk(1, 2, 7, 4, 12, [bytes.subarray(4, 8)]),   // another total
    chunk(1, 2, 7, 4, 10, [snapBytes(7)]),           // past the total
  ];
  for (const m of running) assert.doesNotThrow(() => n.step(m));
  assert.equal(n.hasReady(), false);
  assert.deepEqual(n.status(), before);
  n.step(chunk(1, 2, 7, 4, 10, [bytes.subarray(4, 8)]));
  cycle(n);
  n.step(chunk(1, 2, 7, 8, 10, [bytes.subarray(8, 10)]));
  const rd = cycle(n);
  assert.equal(rd.install, true);
  assert.deepEqual(rd.snapshot?.bytes, bytes, 'the bytes are exactly the offered snapshot');
});

test('an offer the node does not need is ignored; a newer offer replaces a running transfer', () => {
  const n = follower3(chunkCfg);
  n.step(chunk(1, 2, 4, 0, 10, [snapBytes(4)]));
  assert.equal(n.hasReady(), false, 'slots below 4 are chosen here already');
  n.step(chunk(1, 2, 6, 0, 10, [snapBytes(4)]));
  assert.equal((cycle(n).messages[0] as { offset: number }).offset, 4);
  n.step(chunk(3, 2, 9, 0, 6, [snapBytes(4)]));
  const req = cycle(n).messages[0];
  assert.deepEqual(req, { type: MsgType.SnapshotRequest, from: 2, to: 3, prefix: 9, offset: 4 });
  n.step(chunk(1, 2, 6, 4, 10, [snapBytes(4)]));
  assert.equal(n.hasReady(), false, 'the replaced transfer is gone');
});

test('a leader ignores an offer above its window prefix (it would cover slots of its own reign)', () => {
  const n = leader();
  n.step(chunk(2, 1, 5, 0, 3, [enc.encode('abc')]));
  assert.equal(n.hasReady(), false);
  assert.equal(n.status().chosenPrefix, 1);
});

test('a lost chunk is asked for again after a few ticks; a stalled transfer is abandoned and fetching resumes', () => {
  const n = nodeWith(2, chunkCfg);
  const b = ballot(1, 1);
  const heartbeat = (seq: number): Message => ({ type: MsgType.Heartbeat, from: 1, to: 2, ballot: b, chosenPrefix: 8, seq });
  n.step(heartbeat(1));
  cycle(n);
  n.step(chunk(1, 2, 8, 0, 10, [snapBytes(4)]));
  cycle(n);
  const sent: Message[] = [];
  const c = defaultConfig(2, peers);
  for (let t = 1; t <= c.electionTicksMax + 2; t++) {
    n.tick();
    n.step(heartbeat(t + 1)); // the leader is alive, so the follower never campaigns
    if (n.hasReady()) sent.push(...cycle(n).messages.filter((m) => m.type !== MsgType.HeartbeatAck));
  }
  const requests = sent.filter((m) => m.type === MsgType.SnapshotRequest);
  assert.ok(requests.length >= 2, `the request for offset 4 is re-sent (sent ${requests.length})`);
  assert.ok(requests.every((m) => m.type === MsgType.SnapshotRequest && m.offset === 4 && m.prefix === 8));
  const firstFetch = sent.findIndex((m) => m.type === MsgType.LearnRequest);
  assert.ok(firstFetch > sent.lastIndexOf(requests[requests.length - 1]), 'no LearnRequest until the transfer is abandoned');
  n.step(chunk(1, 2, 8, 4, 10, [snapBytes(4)]));
  assert.equal(n.hasReady(), false, 'a chunk of the abandoned transfer is dropped');
});

test('reads waiting on a slot below the prefix are answered with the install', () => {
  const n = nodeWith(2, chunkCfg);
  n.step({ type: MsgType.Heartbeat, from: 1, to: 2, ballot: ballot(1, 1), chosenPrefix: 7, seq: 1 });
  cycle(n);
  n.read(42, 'quorum');
  const ask = ofType(cycle(n).messages, MsgType.ReadIndex)[0] as Extract<Message, { type: MsgType.ReadIndex }>;
  n.step({ type: MsgType.ReadIndexReply, from: 1, to: 2, readId: ask.readId, index: 5, ok: true });
  assert.equal(n.hasReady(), false, 'slot 5 is not applied here yet');
  n.step(chunk(1, 2, 7, 0, 3, [enc.encode('abc')]));
  const rd = cycle(n);
  assert.equal(rd.install, true);
  assert.deepEqual(rd.reads, [{ id: 42, index: 5 }]);
});

test('a leader whose chosen prefix stays below its reign (nobody answers its fetches) runs phase 1 again after an election timeout', () => {
  const n = node(1);
  electionNow(n)
  const b = n.status().ballot;
  cycle(n);
  // Node 2 reports slots 1..4 chosen; then it goes silent for fetches (it crashed, say) while node 3 acks heartbeats.
  n.step({ type: MsgType.Promise, from: 2, to: 1, ballot: b, fromSlot: 1, chosenPrefix: 5, coverFrom: 0, more: false, entries: [] });
  assert.equal(n.status().role, 'leader');
  const c = defaultConfig(1, peers);
  let fetches = 0;
  let campaignedAt = -1;
  for (let t = 1; t <= c.electionTicksMax * 3 && campaignedAt < 0; t++) {
    n.tick();
    if (!n.hasReady()) continue;
    for (const m of sent(cycle(n))) {
      if (m.type === MsgType.LearnRequest) fetches++;
      if (m.type === MsgType.Heartbeat && m.to === 3) n.step({ type: MsgType.HeartbeatAck, from: 3, to: 1, ballot: b, chosenPrefix: 1, seq: m.seq });
      if (m.type === MsgType.Prepare && m.to === 3) {
        assert.ok(m.ballot > b && m.fromSlot === 1, 'a new phase 1 above the old ballot, from the chosen prefix');
        campaignedAt = t;
      }
    }
  }
  assert.ok(fetches >= 2, `it fetched first (${fetches} LearnRequests)`);
  assert.ok(campaignedAt > c.electionTicksMax, `phase 1 again only after an election timeout without progress (at tick ${campaignedAt})`);
});

test('a leader runs phase 1 again when a peer reports a chosen prefix above its window and nothing moves for an election timeout', () => {
  const c = defaultConfig(1, peers);
  /** Tick a leader with slot 1 in flight and never Accepted; acks carry node 2's chosen prefix. Returns the tick of a new Prepare, or -1. */
  const run = (peerChosen: number): number => {
    const n = leader();
    const b = n.status().ballot;
    n.propose([value('x')]);
    cycle(n);
    for (let t = 1; t <= c.electionTicksMax * 3; t++) {
      n.tick();
      if (!n.hasReady()) continue;
      for (const m of sent(cycle(n))) {
        if (m.type === MsgType.Prepare) return t;
        if (m.type === MsgType.Heartbeat) n.step({ type: MsgType.HeartbeatAck, from: m.to, to: 1, ballot: b, chosenPrefix: m.to === 2 ? peerChosen : 1, seq: m.seq });
      }
    }
    return -1;
  };
  assert.equal(run(1), -1, 'no evidence of a lag: the leader keeps retransmitting');
  const at = run(3);
  assert.ok(at > c.electionTicksMax, `node 2 knows slots 1..2 chosen: phase 1 again after an election timeout (at tick ${at})`);
});

test('a candidate counts its own promise only once it is durable (a rejoining peer relies on it)', () => {
  const n = node(1);
  electionNow(n)
  const b = n.status().ballot;
  const rd = n.ready();
  assert.deepEqual(rd.hardState, { ballot: b, vote: 0 });
  n.step({ type: MsgType.Promise, from: 2, to: 1, ballot: b, fromSlot: 1, chosenPrefix: 1, coverFrom: 0, more: false, entries: [] });
  assert.equal(n.status().role, 'candidate', 'one Promise and a promise not yet durable are no majority');
  n.advance(rd);
  assert.equal(n.status().role, 'leader');
});

test('a candidate leads only once its own promise is durable, even when its peers alone are a quorum', () => {
  // Else it could send Accepts at its ballot, crash before the promise was durable, and restart to
  // pick the same ballot again for a different value: two values accepted at one ballot, one slot.
  const n = node(1);
  electionNow(n)
  const b = n.status().ballot;
  const rd = n.ready();
  assert.deepEqual(rd.hardState, { ballot: b, vote: 0 });
  for (const from of [2, 3]) n.step({ type: MsgType.Promise, from, to: 1, ballot: b, fromSlot: 1, chosenPrefix: 1, coverFrom: 0, more: false, entries: [] });
  assert.equal(n.status().role, 'candidate', 'two peers promised, but its own promise is not durable');
  assert.equal(n.propose([new TextEncoder().encode('v')]), 'no-leader');
  assert.equal(n.hasReady(), false, 'nothing to send at the ballot before the promise is durable');
  n.advance(rd);
  assert.equal(n.status().role, 'leader');
  // A candidate that restarted before its promise was durable may pick the same ballot again:
  // nobody saw more of it than a Prepare, and a Prepare sent again is answered alike.
  const restarted = node(1, { hardState: { ballot: 0, vote: 0 }, records: [], chosenPrefix: 1, appliedPrefix: 1, snapshot: null, rejoining: false });
  electionNow(restarted);
  assert.equal(restarted.status().ballot, b);
  const peer = node(2);
  for (let i = 0; i < 2; i++) {
    peer.step({ type: MsgType.Prepare, from: 1, to: 2, ballot: b, fromSlot: 1 });
    assert.deepEqual(ofType(sent(cycle(peer)), MsgType.Promise).map((m) => m.type === MsgType.Promise && m.ballot), [b]);
  }
});

// ---------------------------------------------------------------- rejoining without voting

/** What a wiped node (or one whose damaged log was set aside) restores: nothing, and `rejoining`. */
const wiped = (): Restored => ({ hardState: { ballot: 0, vote: 0 }, records: [], chosenPrefix: 1, appliedPrefix: 1, snapshot: null, rejoining: true });
const catchUpReply = (from: number, to: number, b: number, lastPosition: number, chosenPrefix: number, nonce: number): Message =>
  ({ type: MsgType.CatchUpReply, from, to, ballot: b, lastPosition, chosenPrefix, nonce });
/** The nonce a rejoining node's CatchUpRequests carry (drawn once per life; replies must echo it). */
const nonceOf = (n: MultiPaxos): number => (n as unknown as { catchUpNonce: number }).catchUpNonce;
/** Tick past the quiet time of a restarted node, so a Prepare would be answered if the node votes. */
const tickQuiet = (n: MultiPaxos): Message[] => {
  const out: Message[] = [];
  for (let t = 0; t < defaultConfig(2, peers).electionTicksMax * 3; t++) { n.tick(); if (n.hasReady()) out.push(...sent(cycle(n))); }
  return out;
};
const votes = (ms: Message[]): Message[] => ms.filter((m) => m.type === MsgType.Promise || m.type === MsgType.Nack);

test('a fresh core without `restored` is not rejoining and asks nobody', () => {
  const n = node(2);
  assert.equal(n.status().rejoining, false);
  assert.equal(n.hasReady(), false);
});

test('a rejoining node asks every other member, and again every few ticks only those that have not answered', () => {
  const n = node(2, wiped());
  assert.equal(n.status().rejoining, true);
  const first = cycle(n);
  assert.equal(first.rejoined, false);
  assert.deepEqual(ofType(first.messages, MsgType.CatchUpRequest).map((m) => m.to), [1, 3]);
  n.step(catchUpReply(1, 2, ballot(1, 1), 0, 1, nonceOf(n)));
  const again: Message[] = [];
  for (let t = 0; t < 7; t++) { n.tick(); if (n.hasReady()) again.push(...sent(cycle(n))); }
  const asked = ofType(again, MsgType.CatchUpRequest).map((m) => m.to);
  assert.ok(asked.length >= 2 && asked.every((to) => to === 3), `re-sent only to node 3, got ${asked}`);
});

test('before every member answered, a rejoining node sends no Promise, Nack, Accepted or HeartbeatAck and never campaigns, yet learns from the leader', () => {
  const n = node(2, wiped());
  cycle(n);
  n.step(catchUpReply(1, 2, ballot(1, 1), 1, 2, nonceOf(n))); // node 3 never answers
  const ticked = tickQuiet(n);
  assert.equal(ticked.filter((m) => m.type === MsgType.Prepare).length, 0, 'it never campaigns');
  assert.equal(n.status().role, 'follower');
  n.step({ type: MsgType.Prepare, from: 3, to: 2, ballot: ballot(7, 3), fromSlot: 1 });
  n.step({ type: MsgType.Prepare, from: 3, to: 2, ballot: 0, fromSlot: 1 });
  assert.equal(n.hasReady(), false, 'no Promise and no Nack');
  const b = ballot(1, 1);
  n.step({ type: MsgType.Accept, from: 1, to: 2, ballot: b, chosenPrefix: 2, entries: [{ slot: 1, ballot: b, value: value('a') }, { slot: 2, ballot: b, value: value('b') }] });
  n.step({ type: MsgType.Heartbeat, from: 1, to: 2, ballot: b, chosenPrefix: 2, seq: 1 });
  let rd = cycle(n);
  assert.deepEqual(rd.records, [], 'nothing accepted');
  assert.equal(ofType(sent(rd), MsgType.Accepted).length + ofType(sent(rd), MsgType.HeartbeatAck).length, 0, 'no Accepted, no HeartbeatAck');
  assert.equal(n.status().leader, 1, 'the leader is known');
  assert.equal(n.propose([value('x')]), 'forwarded');
  n.tick();
  n.tick();
  rd = cycle(n);
  const req = ofType(rd.messages, MsgType.LearnRequest)[0];
  assert.ok(req && req.type === MsgType.LearnRequest && req.to === 1 && req.firstSlot === 1 && req.count === 1, 'it fetches the chosen prefix it heard of');
  n.step({ type: MsgType.LearnReply, from: 1, to: 2, chosenPrefix: 2, entries: [{ slot: 1, ballot: b, value: value('a') }] });
  rd = cycle(n);
  assert.deepEqual(rd.apply.map((a) => a.position), [1]);
  assert.equal(n.status().rejoining, true);
});

test('once every member answered it raises its promise to the highest ballot reported and accepts, but votes only once its chosen prefix passes the highest lastPosition', () => {
  const n = node(2, wiped());
  cycle(n);
  n.step(catchUpReply(1, 2, ballot(3, 1), 3, 2, nonceOf(n)));
  n.step(catchUpReply(3, 2, ballot(4, 3), 2, 1, nonceOf(n)));
  let rd = cycle(n);
  assert.deepEqual(rd.hardState, { ballot: ballot(4, 3), vote: 0 }, 'promised raised to the highest reported ballot');
  assert.equal(rd.rejoined, false);
  assert.equal(n.status().rejoining, true);
  // A lower ballot is refused like any acceptor would; a ballot at or above the promise is accepted.
  const low = ballot(3, 1);
  n.step({ type: MsgType.Accept, from: 1, to: 2, ballot: low, chosenPrefix: 1, entries: [{ slot: 1, ballot: low, value: value('a') }] });
  rd = cycle(n);
  assert.equal(rd.records.length, 0);
  assert.equal(ofType(rd.messages, MsgType.Nack).length, 1);
  const b = ballot(5, 1);
  n.step({ type: MsgType.Accept, from: 1, to: 2, ballot: b, chosenPrefix: 1, entries: [1, 2, 3].map((s) => ({ slot: s, ballot: b, value: value(`v${s}`) })) });
  n.step({ type: MsgType.Heartbeat, from: 1, to: 2, ballot: b, chosenPrefix: 1, seq: 1 });
  rd = cycle(n);
  assert.deepEqual(rd.records.map((r) => r.position), [1, 2, 3]);
  assert.deepEqual(ofType(rd.messagesAfterPersist, MsgType.Accepted).map((m) => m.type === MsgType.Accepted && [m.firstSlot, m.count]), [[1, 3]]);
  assert.equal(ofType(rd.messages, MsgType.HeartbeatAck).length, 1);
  // Still no Promise: slots 1..3 may hold values it accepted and forgot.
  assert.equal(tickQuiet(n).filter((m) => m.type === MsgType.Prepare || m.type === MsgType.PrePrepare).length, 0, 'it never campaigns');
  n.step({ type: MsgType.Prepare, from: 3, to: 2, ballot: ballot(9, 3), fromSlot: 1 });
  assert.equal(votes(n.hasReady() ? sent(cycle(n)) : []).length, 0, 'no Promise in step 2');
  // Chosen prefix 3 does not pass lastPosition 3: still rejoining.
  n.step({ type: MsgType.Commit, from: 1, to: 2, ballot: b, firstSlot: 1, count: 2, chosenPrefix: 3 });
  rd = cycle(n);
  assert.deepEqual(rd.apply.map((a) => a.position), [1, 2]);
  assert.equal(rd.rejoined, false);
  assert.equal(n.status().rejoining, true);
  n.step({ type: MsgType.Commit, from: 1, to: 2, ballot: b, firstSlot: 3, count: 1, chosenPrefix: 4 });
  rd = cycle(n);
  assert.equal(rd.rejoined, false, 'node 1 last reported 3.1, below the fence 4.3: asked again');
  const again: Message[] = [];
  for (let t = 0; t < 3; t++) { n.tick(); if (n.hasReady()) again.push(...sent(cycle(n))); }
  assert.deepEqual(ofType(again, MsgType.CatchUpRequest).map((m) => m.to), [1]);
  n.step(catchUpReply(1, 2, b, 3, 4, nonceOf(n)));
  rd = cycle(n);
  assert.equal(rd.rejoined, true, 'the Ready that ends rejoining says so');
  assert.ok(rd.hardState !== null, 'with the hard state');
  assert.equal(n.status().rejoining, false);
  assert.ok(tickQuiet(n).some((m) => m.type === MsgType.PrePrepare), 'without a leader it campaigns again');
  n.step({ type: MsgType.Prepare, from: 3, to: 2, ballot: ballot(20, 3), fromSlot: 1 });
  rd = cycle(n);
  const promise = ofType(rd.messagesAfterPersist, MsgType.Promise)[0];
  assert.ok(promise && promise.type === MsgType.Promise && promise.chosenPrefix === 4, 'it votes again, reporting its chosen prefix');
});

test('when every member reports nothing, a rejoining node votes after one round trip (later replies change nothing); a single member at once', () => {
  const n = node(2, wiped());
  cycle(n);
  n.step(catchUpReply(1, 2, 0, 0, 1, nonceOf(n)));
  assert.equal(n.status().rejoining, true);
  n.step(catchUpReply(3, 2, 0, 0, 1, nonceOf(n)));
  const rd = cycle(n);
  assert.equal(rd.rejoined, true);
  assert.equal(n.status().rejoining, false);
  // A reply arriving once it has rejoined (an answer to a request re-sent earlier) changes nothing.
  n.step(catchUpReply(1, 2, ballot(8, 1), 99, 1, nonceOf(n)));
  assert.equal(n.hasReady(), false);
  assert.equal(n.status().rejoining, false);
  const solo = new MultiPaxos({ config: defaultConfig(1, [1]), kernels: k, rng: new Prng(1), restored: wiped() });
  assert.equal(solo.status().rejoining, false);
  assert.equal(cycle(solo).rejoined, true);
});

test('a node told it starts a new cluster votes once a majority, itself included, reports nothing; a single member at once', () => {
  const n = node(2, { ...wiped(), newCluster: true });
  assert.deepEqual(ofType(cycle(n).messages, MsgType.CatchUpRequest).map((m) => m.to), [1, 3]);
  n.step(catchUpReply(1, 2, 0, 0, 1, nonceOf(n))); // node 3 is down
  const rd = cycle(n);
  assert.equal(rd.rejoined, true, 'nodes 1 and 2 are a majority holding nothing');
  assert.deepEqual(rd.hardState, { ballot: 0, vote: 0 });
  assert.equal(n.status().rejoining, false);
  assert.ok(tickQuiet(n).some((m) => m.type === MsgType.PrePrepare), 'it campaigns');
  n.step({ type: MsgType.Prepare, from: 1, to: 2, ballot: ballot(20, 1), fromSlot: 1 });
  assert.equal(ofType(cycle(n).messagesAfterPersist, MsgType.Promise).length, 1, 'and votes');
  const solo = new MultiPaxos({ config: defaultConfig(1, [1]), kernels: k, rng: new Prng(1), restored: { ...wiped(), newCluster: true } });
  assert.equal(solo.status().rejoining, false);
  assert.equal(cycle(solo).rejoined, true);
});

test('a wiped node restarted as if for a new cluster finds it running (a member promised a ballot, or holds slots) and rejoins in full', () => {
  for (const [b, lastPosition, chosenPrefix] of [[ballot(1, 1), 0, 1], [ballot(1, 1), 2, 3]]) {
    const n = node(2, { ...wiped(), newCluster: true });
    cycle(n);
    const shown = `ballot ${b}, lastPosition ${lastPosition}, chosenPrefix ${chosenPrefix}`;
    n.step(catchUpReply(1, 2, b, lastPosition, chosenPrefix, nonceOf(n)));
    assert.equal(n.status().rejoining, true, shown);
    n.step({ type: MsgType.Prepare, from: 3, to: 2, ballot: ballot(9, 3), fromSlot: 1 });
    assert.equal(votes(n.hasReady() ? sent(cycle(n)) : []).length, 0, `${shown}: no Promise before every member answered`);
    // Node 3 answers empty, as a member that never took part would: with node 2 that is a majority, but the cluster runs.
    n.step(catchUpReply(3, 2, 0, 0, 1, nonceOf(n)));
    const rd = cycle(n);
    assert.deepEqual(rd.hardState, { ballot: b, vote: 0 }, `${shown}: promised raised to the reported ballot (step 2)`);
    assert.equal(rd.rejoined, false, shown);
    assert.equal(n.status().rejoining, true, `${shown}: node 3 is not fenced${lastPosition > 0 ? ', and slots 1..2 are not chosen here' : ''}`);
    tickQuiet(n);
    n.step({ type: MsgType.Prepare, from: 3, to: 2, ballot: ballot(30, 3), fromSlot: 1 });
    assert.equal(votes(n.hasReady() ? sent(cycle(n)) : []).length, 0, `${shown}: no Promise while rejoining`);
  }
});

test('every node answers CatchUpRequest in every state with its promise, highest accepted slot and chosen prefix', () => {
  const ask = (n: MultiPaxos, id: number): Message | undefined => {
    n.step({ type: MsgType.CatchUpRequest, from: 3, to: id, nonce: 77 });
    return ofType(cycle(n).messages, MsgType.CatchUpReply)[0];
  };
  const b = ballot(1, 1);
  const f = node(2);
  f.step({ type: MsgType.Accept, from: 1, to: 2, ballot: b, chosenPrefix: 1, entries: [{ slot: 1, ballot: b, value: value('a') }, { slot: 5, ballot: b, value: value('e') }] });
  cycle(f);
  assert.deepEqual(ask(f, 2), catchUpReply(2, 3, b, 5, 1, 77), 'a follower with a hole');
  const l = leader();
  l.propose([value('x')]);
  cycle(l);
  assert.deepEqual(ask(l, 1), catchUpReply(1, 3, l.status().ballot, 1, 1, 77), 'a leader with slot 1 in flight');
  const r = node(2, wiped());
  cycle(r);
  assert.deepEqual(ask(r, 2), catchUpReply(2, 3, 0, 0, 1, 77), 'a node that is rejoining itself');
  const s = node(2, { hardState: { ballot: b, vote: 0 }, records: [], chosenPrefix: 4, appliedPrefix: 4, snapshot: { prefix: 4, ballot: 0, bytes: enc.encode('abc') }, rejoining: false });
  assert.deepEqual(ask(s, 2), catchUpReply(2, 3, b, 3, 4, 77), 'trimmed slots still count as positions it held');
});

test('replies from strangers, malformed or duplicate replies do not count; a node not rejoining ignores replies', () => {
  const n = node(2, wiped());
  cycle(n);
  n.step(catchUpReply(1, 2, ballot(2, 1), 4, 1, nonceOf(n)));
  n.step(catchUpReply(1, 2, ballot(2, 1), 4, 1, nonceOf(n)));             // a duplicate: node 1 counts once
  n.step(catchUpReply(9, 2, ballot(9, 9), 0, 1, nonceOf(n)));             // not a member
  n.step(catchUpReply(2, 2, 0, 0, 1, nonceOf(n)));                         // from itself
  n.step(catchUpReply(3, 2, Number.NaN, 0, 1, nonceOf(n)));                // malformed
  n.step(catchUpReply(3, 2, ballot(1, 3), -1, 1, nonceOf(n)));             // malformed
  n.step(catchUpReply(3, 4, ballot(1, 3), 0, 1, nonceOf(n)));              // not for this node
  n.step(catchUpReply(3, 2, ballot(1, 3), 0, 1, nonceOf(n) + 1));          // an answer to an earlier life of this node
  // An older leader of node 1 is heard (its ballot becomes the promise) but not accepted from.
  const b = ballot(1, 1);
  n.step({ type: MsgType.Accept, from: 1, to: 2, ballot: b, chosenPrefix: 1, entries: [{ slot: 1, ballot: b, value: value('a') }] });
  let rd = cycle(n);
  assert.equal(rd.records.length, 0, 'still in step 1: node 3 has not answered');
  assert.equal(n.status().rejoining, true);
  n.step(catchUpReply(3, 2, ballot(1, 3), 0, 1, nonceOf(n)));
  rd = cycle(n);
  assert.deepEqual(rd.hardState, { ballot: ballot(2, 1), vote: 0 }, 'the highest ballot of the counted replies, not the stranger\'s 9.9');
  // A reply to a node that is not rejoining changes nothing.
  const fresh = node(2);
  const before = fresh.status();
  fresh.step(catchUpReply(1, 2, ballot(8, 1), 99, 1, nonceOf(fresh)));
  assert.deepEqual(fresh.status(), before);
  assert.equal(fresh.hasReady(), false);
});

test('with the planted bug rejoinVotesAtOnce a wiped node asks nobody and promises like a node that remembers', () => {
  const n = new MultiPaxos({ config: { ...defaultConfig(2, peers), pendingMax: 16 }, kernels: k, rng: new Prng(2), restored: wiped(), bugs: { rejoinVotesAtOnce: true } });
  assert.equal(n.status().rejoining, false);
  assert.equal(n.hasReady(), false, 'no CatchUpRequest');
  tickQuiet(n);
  // Past its quiet time it may have campaigned itself; a higher Prepare still gets a Promise.
  n.step({ type: MsgType.Prepare, from: 3, to: 2, ballot: ballot(99, 3), fromSlot: 1 });
  const rd = cycle(n);
  assert.equal(ofType(rd.messagesAfterPersist, MsgType.Promise).length, 1);
});

test('the wiped-node scenario without the rule (planted bug rejoinVotesAtOnce) loses the chosen x to a new command; with it x survives', () => {
  // dist/test/multipaxos.test.js -> <repo>/test/testdata
  const url = new URL('../../test/testdata/multipaxos/rejoin-wiped.txt', import.meta.url);
  const file = parseScenario(readFileSync(url, 'utf8'), 'rejoin-wiped.txt');
  const heal = file.blocks.findIndex((b) => b.command === 'heal');
  assert.ok(heal > 0, 'the scenario heals the partition after the wipe');
  const run = (bug: boolean): { log1: string[]; log3: string[]; whileDown: string[] } => {
    const c = clusterFromCommand((o) => new MultiPaxos({ ...o, bugs: { rejoinVotesAtOnce: bug } }), k, file.blocks[0].command);
    for (const b of file.blocks.slice(1, heal + 1)) c.run(b.command);
    // Node 1 is down: only 2 and 3 can form a quorum, and a leader would put z in slot 1.
    const whileDown = [...c.run('advance 40'), ...c.run('propose 3 z'), ...c.run('stabilize')];
    c.run('restart 1');
    c.run('advance 40');
    return { log1: c.run('log 1'), log3: c.run('log 3'), whileDown };
  };
  const safe = run(false);
  assert.ok(!safe.whileDown.some((l) => l.includes('is leader')), `no leader while 1 is down: ${safe.whileDown.join('; ')}`);
  assert.ok(safe.whileDown.includes('3 propose: no-leader'));
  assert.deepEqual([safe.log1, safe.log3], [['1 log: 1:x'], ['3 log: 1:x']]);
  const buggy = run(true);
  assert.ok(buggy.whileDown.some((l) => l.startsWith('3 is leader')), 'with the bug 2 promises and 3 is elected');
  assert.deepEqual([buggy.log1, buggy.log3], [['1 log: 1:x'], ['3 log: 1:z']], 'slot 1 holds x at node 1 and z at node 3');
});

/**
 * Random scenario-runner histories over three nodes: proposals, dropped links, crashes and
 * restarts, and wipes (at most one node without its state at a time, and never with another node
 * down). After every command, no slot may hold two different applied values across the nodes.
 * Without the bug, the history ends healed: the wiped node must vote again and every node apply a
 * new write. Returns the first violation, or null.
 */
const wipeHistory = (seed: number, bug: boolean): string | null => {
  const rng = new Prng(seed);
  const c = clusterFromCommand((o) => new MultiPaxos({ ...o, bugs: { rejoinVotesAtOnce: bug } }), k, `cluster nodes=3 seed=${seed}`);
  const down = new Set<number>();
  let wiped = 0; // the node that is rejoining, 0 if none
  const applied = new AppliedValues();
  for (let step = 0, cmd = 0; step < 300; step++) {
    const r = rng.int(0, 100);
    const id = rng.int(1, 4);
    let out: string[] = [];
    if (r < 30) out = c.run(`advance ${rng.int(1, 6)}`);
    else if (r < 55) { if (!down.has(id)) out = c.run(`propose ${id} v${cmd++}`); }
    else if (r < 80) out = c.run(`deliver drop=(${rng.int(1, 4)}${rng.int(0, 2) ? `>${rng.int(1, 4)}` : ''})`);
    else if (r < 86) { if (down.size === 0 && wiped === 0) { out = c.run(`crash ${id}`); down.add(id); } }
    else if (r < 92) { if (down.has(id)) { out = c.run(`restart ${id}`); down.delete(id); } }
    else if (r < 96) {
      if ((wiped === 0 || wiped === id) && (down.size === 0 || down.has(id))) { out = c.run(`wipe ${id}`); down.delete(id); wiped = id; }
    } else out = c.run(`tick ${id} ${rng.int(1, 25)}`);
    const violation = check(out);
    if (violation) return violation;
  }
  if (bug) return null;
  // Liveness: with every node back, the one that was wiped votes again and every node applies a new write.
  for (const id of down) check(c.run(`restart ${id}`));
  check(c.run('advance 60'));
  const proposer = [1, 2, 3].find((id) => /proposed|forwarded/.test(c.run(`propose ${id} final`)[0]));
  const end = c.run('advance 100');
  const violation = check(end);
  if (violation) return violation;
  if (wiped !== 0) return `seed ${seed}: node ${wiped} is still rejoining after the cluster healed`;
  const finals = new Set(end.filter((l) => / applied \d+: final$/.test(l)).map((l) => l.split(' ')[0]));
  if (proposer === undefined || finals.size !== 3) return `seed ${seed}: the final write (proposed at ${proposer}) was applied only at nodes ${[...finals]}`;
  return null;

  function check(out: string[]): string | null {
    if (out.includes(`${wiped} rejoined: votes again`)) wiped = 0;
    const conflict = applied.check(out);
    return conflict === null ? null : `seed ${seed}: ${conflict}`;
  }
};

test('random histories with wiped nodes never apply two values in one slot and end with every node rejoined and applying a new write; the same histories catch rejoinVotesAtOnce', () => {
  for (let seed = 1; seed <= 300; seed++) assert.equal(wipeHistory(seed, false), null);
  let caught: string | null = null;
  for (let seed = 1; seed <= 1000 && caught === null; seed++) caught = wipeHistory(seed, true);
  assert.ok(caught, 'the planted bug was not caught in 1,000 seeds');
  console.log(`rejoinVotesAtOnce caught at ${caught}`);
});

test('a node restarted before its rejoined Ready was durable starts over at step 1, keeping what it persisted', () => {
  const b = ballot(5, 1);
  const restored: Restored = {
    hardState: { ballot: b, vote: 0 }, records: [1, 2].map((s) => ({ position: s, ballot: b, value: value(`v${s}`) })),
    chosenPrefix: 1, appliedPrefix: 1, snapshot: null, rejoining: true,
  };
  const n = node(2, restored);
  assert.equal(n.status().rejoining, true);
  assert.equal(n.status().ballot, b, 'its persisted promise stands');
  assert.deepEqual(ofType(cycle(n).messages, MsgType.CatchUpRequest).map((m) => m.to), [1, 3]);
  n.step({ type: MsgType.Accept, from: 1, to: 2, ballot: b, chosenPrefix: 1, entries: [{ slot: 3, ballot: b, value: value('v3') }] });
  assert.equal(n.hasReady(), false, 'step 1 again: nothing accepted, no Accepted');
  assert.equal(n.status().leader, 1);
  n.step(catchUpReply(1, 2, b, 3, 1, nonceOf(n)));
  n.step(catchUpReply(3, 2, b, 2, 1, nonceOf(n)));
  assert.equal(n.hasReady(), false, 'the promise already covers the highest ballot reported');
  // Its own records at the leader's ballot become chosen when the leader says so; slot 3 is fetched.
  n.step({ type: MsgType.Commit, from: 1, to: 2, ballot: b, firstSlot: 1, count: 3, chosenPrefix: 4 });
  let rd = cycle(n);
  assert.deepEqual(rd.apply.map((a) => a.position), [1, 2]);
  assert.equal(rd.rejoined, false);
  n.step({ type: MsgType.LearnReply, from: 1, to: 2, chosenPrefix: 4, entries: [{ slot: 3, ballot: b, value: value('v3') }] });
  rd = cycle(n);
  assert.deepEqual(rd.apply.map((a) => a.position), [3]);
  assert.equal(rd.rejoined, true);
});

test('a node that led before it was wiped votes only once every member reports a promise past its old ballots (its old Accepts may still be in flight)', () => {
  const old = ballot(3, 2); // node 2 led at 3.2 before it lost its state
  const n = node(2, wiped());
  cycle(n);
  n.step(catchUpReply(1, 2, old, 5, 6, nonceOf(n)));
  n.step(catchUpReply(3, 2, old, 4, 6, nonceOf(n)));
  let rd = cycle(n);
  assert.deepEqual(rd.hardState, { ballot: old, vote: 0 }, 'step 2: promised raised to the fence 3.2');
  // Slots 1..5 chosen and learned: past every lastPosition, yet both members may still accept an
  // Accept node 2 sent at 3.2 in its earlier life, so it does not vote.
  n.step({ type: MsgType.LearnReply, from: 1, to: 2, chosenPrefix: 6, entries: [1, 2, 3, 4, 5].map((s) => ({ slot: s, ballot: old, value: value(`v${s}`) })) });
  rd = cycle(n);
  assert.deepEqual(rd.apply.map((a) => a.position), [1, 2, 3, 4, 5]);
  assert.equal(rd.rejoined, false);
  const asked: Message[] = [];
  for (let t = 0; t < 3; t++) { n.tick(); if (n.hasReady()) asked.push(...sent(cycle(n))); }
  assert.deepEqual(ofType(asked, MsgType.CatchUpRequest).map((m) => m.to).sort(), [1, 3], 'both asked again');
  // Node 1 was elected at 4.1: its promise refuses 3.2. Node 3 still reports 3.2.
  n.step(catchUpReply(1, 2, ballot(4, 1), 6, 6, nonceOf(n)));
  n.step(catchUpReply(3, 2, old, 4, 6, nonceOf(n)));
  assert.equal(n.status().rejoining, true);
  n.step(catchUpReply(3, 2, ballot(4, 1), 6, 6, nonceOf(n)));
  assert.equal(n.status().rejoining, true, 'the new answers reported slot 6, not yet known chosen here');
  n.step({ type: MsgType.LearnReply, from: 1, to: 2, chosenPrefix: 7, entries: [{ slot: 6, ballot: ballot(4, 1), value: value('v6') }] });
  rd = cycle(n);
  assert.equal(rd.rejoined, true);
  assert.equal(n.status().rejoining, false);
});

test('pipelined Readys: a leader with two outstanding counts each one\'s own accepts only when it is advanced, in order', () => {
  const n = leader();
  const b = n.status().ballot;
  n.propose([enc.encode('x')]);
  const first = n.ready();
  n.propose([enc.encode('y')]);
  assert.ok(n.hasReady(), 'a second Ready is handed out while the first is outstanding');
  const second = n.ready();
  const slotOf = (rd: Ready): number => (ofType(rd.messages, MsgType.Accept)[0] as Extract<Message, { type: MsgType.Accept }>).entries[0].slot;
  const [s1, s2] = [slotOf(first), slotOf(second)];
  assert.equal(s2, s1 + 1);
  // Node 2's Accepted for both slots: with the leader's own durable accept, a majority of 3.
  n.step({ type: MsgType.Accepted, from: 2, to: 1, ballot: b, firstSlot: s1, count: 2 });
  assert.equal(n.status().chosenPrefix, s1, 'nothing is chosen while the leader\'s accepts are not durable');
  assert.throws(() => n.advance(second), /oldest outstanding/, 'Readys are advanced in the order they were handed out');
  n.advance(first);
  assert.equal(n.status().chosenPrefix, s1 + 1, 'the first Ready\'s slot is chosen once it is durable, the second\'s not yet');
  n.advance(second);
  assert.equal(n.status().chosenPrefix, s2 + 1);
});

test('a leader counts a slot chosen only once its own accept is durable, even when its followers alone are a quorum', () => {
  const n = leader();
  const b = n.status().ballot;
  n.propose([enc.encode('x')]);
  const rd = n.ready();
  const slot = (ofType(rd.messages, MsgType.Accept)[0] as Extract<Message, { type: MsgType.Accept }>).entries[0].slot;
  for (const from of [2, 3]) n.step({ type: MsgType.Accepted, from, to: 1, ballot: b, firstSlot: slot, count: 1 });
  assert.equal(n.status().chosenPrefix, slot, 'two followers of three acked, the leader\'s own write is not durable');
  n.advance(rd);
  assert.equal(n.status().chosenPrefix, slot + 1);
});

test('pipelined Readys: no more than readysOutstandingMax are handed out before one is advanced', () => {
  const n = new MultiPaxos({ config: { ...defaultConfig(1, [1]), readysOutstandingMax: 2 }, kernels: k, rng: new Prng(1) });
  while (n.status().role !== 'leader') {
    n.tick();
    while (n.hasReady()) cycle(n);
  }
  const held: Ready[] = [];
  for (const w of ['a', 'b', 'c']) {
    n.propose([enc.encode(w)]);
    if (n.hasReady()) held.push(n.ready());
  }
  assert.equal(held.length, 2);
  assert.throws(() => n.ready(), /readysOutstandingMax/);
  n.advance(held[0]);
  assert.ok(n.hasReady(), 'room again once the oldest is advanced');
});

test('a Promise comes in parts within promisePartBytes; the candidate counts the acceptor only once the parts cover everything, with no gap', () => {
  const partBytes = 64;
  const withParts = (id: number, restored?: Restored): MultiPaxos =>
    new MultiPaxos({ config: { ...defaultConfig(id, peers), promisePartBytes: partBytes }, kernels: k, rng: new Prng(id), restored });
  // Acceptor 2 accepted slots 2..11 from leader 1 at round 0 (slot 1 a hole, so its chosen prefix
  // stays 1); node 1, restarted with nothing, campaigns at round 1 (the acceptor's sticky leader).
  const acceptor = withParts(2);
  const b1 = ballot(0, 1);
  const values = new Map<number, Uint8Array>();
  for (let s = 2; s <= 11; s++) values.set(s, value(`command number ${s} with some bytes`));
  acceptor.step({ type: MsgType.Accept, from: 1, to: 2, ballot: b1, chosenPrefix: 1, entries: [...values].map(([slot, v]) => ({ slot, ballot: b1, value: v })) });
  cycle(acceptor);
  const candidate = withParts(1);
  electionNow(candidate)
  const b3 = candidate.status().ballot;
  const prepare = ofType(sent(cycle(candidate)), MsgType.Prepare).find((m) => m.to === 2)!;
  acceptor.step(prepare);
  const parts = ofType(sent(cycle(acceptor)), MsgType.Promise).flatMap((m) => (m.type === MsgType.Promise ? [m] : []));
  assert.ok(parts.length >= 3, `${parts.length} parts for 10 slots of ${values.get(2)!.length} bytes in parts of ${partBytes}`);
  let coverFrom = 1;
  for (const [i, p] of parts.entries()) {
    assert.equal(p.ballot, b3);
    assert.equal(p.coverFrom, coverFrom, `part ${i} starts where the one before ended`);
    assert.equal(p.more, i < parts.length - 1);
    const bytes = p.entries.reduce((n, e) => n + e.value.length, 0);
    assert.ok(p.entries.length === 1 || bytes <= partBytes, `part ${i}: ${bytes} bytes in ${p.entries.length} entries`);
    coverFrom = p.entries[p.entries.length - 1].slot + 1;
  }
  assert.deepEqual(parts.flatMap((p) => p.entries.map((e) => e.slot)), [...values.keys()]);
  // A part lost on the way: the acceptor does not count, and the candidate (whose own promise is
  // durable) still needs it for a quorum of 2.
  const lossy = withParts(1);
  electionNow(lossy)
  cycle(lossy);
  const again = parts.map((p) => ({ ...p, ballot: lossy.status().ballot }));
  for (const p of again.filter((_, i) => i !== 1)) lossy.step(p);
  assert.equal(lossy.status().role, 'candidate', 'a Promise with a part missing was counted');
  // All the parts, in order: the candidate leads and proposes every reported value (a no-op at slot 1).
  for (const p of parts) candidate.step(p);
  assert.equal(candidate.status().role, 'leader');
  const accepts = ofType(sent(cycle(candidate)), MsgType.Accept).filter((m) => m.to === 2);
  const proposed = new Map(accepts.flatMap((m) => (m.type === MsgType.Accept ? m.entries.map((e) => [e.slot, e.value] as const) : [])));
  assert.deepEqual(proposed.get(1), value());
  for (const [s, v] of values) assert.deepEqual(proposed.get(s), v, `slot ${s}`);
});

test('a leader spaces out the copies of an Accept that no Accepted answers (a big value takes longer than a few ticks)', () => {
  // An 8 MiB command on a 3-node in-process cluster was sent 7 times to each peer in its first
  // 420 ms (one copy every 3 ticks) before the first Accepted could come back: 112 MiB that held up
  // the heartbeats behind them until the followers deposed the leader, and it was never chosen.
  const c = defaultConfig(1, peers);
  const n = leader();
  const b = n.status().ballot;
  n.propose([value('x')]);
  assert.equal(ofType(sent(cycle(n)), MsgType.Accept).filter((m) => m.to === 2).length, 1, 'the first Accept');
  const copies: number[] = [];
  for (let t = 1; t <= c.electionTicksMax * 2; t++) {
    n.tick();
    if (!n.hasReady()) continue;
    for (const m of sent(cycle(n))) {
      if (m.type === MsgType.Accept && m.to === 2) copies.push(t);
      // Peers ack heartbeats (the leader stays leader) but never the Accept.
      if (m.type === MsgType.Heartbeat) n.step({ type: MsgType.HeartbeatAck, from: m.to, to: 1, ballot: b, chosenPrefix: 1, seq: m.seq });
    }
  }
  assert.equal(n.status().role, 'leader');
  assert.ok(copies.length >= 2, `it still retransmits (copies at ticks ${copies})`);
  assert.ok(copies.length <= 6, `copies at ticks ${copies}: each waits longer than the last`);
  for (let i = 2; i < copies.length; i++) {
    assert.ok(copies[i] - copies[i - 1] >= copies[i - 1] - copies[i - 2], `gaps never shrink (copies at ticks ${copies})`);
  }
  assert.ok(copies[copies.length - 1] - copies[copies.length - 2] <= c.electionTicksMax, 'and stay within an election timeout');
});

test('a leader sends an overdue Accept again only to the members that have not acked it', () => {
  const five = [1, 2, 3, 4, 5];
  const n = leader(16, five);
  const b = n.status().ballot;
  n.propose([value('x')]);
  const first = ofType(sent(cycle(n)), MsgType.Accept);
  assert.deepEqual(first.map((m) => m.to), [2, 3, 4, 5]);
  const slot = first[0].type === MsgType.Accept ? first[0].entries[0].slot : 0;
  // Node 2 acks; with the leader that is 2 of the 3 a quorum of 5 needs: the slot stays in flight.
  n.step({ type: MsgType.Accepted, from: 2, to: 1, ballot: b, firstSlot: slot, count: 1 });
  const copiesTo = new Set<number>();
  for (let t = 0; t < defaultConfig(1, five).electionTicksMin && copiesTo.size === 0; t++) {
    n.tick();
    if (!n.hasReady()) continue;
    for (const m of sent(cycle(n))) {
      if (m.type === MsgType.Accept && m.entries.some((e) => e.slot === slot)) copiesTo.add(m.to);
      if (m.type === MsgType.Heartbeat) n.step({ type: MsgType.HeartbeatAck, from: m.to, to: 1, ballot: b, chosenPrefix: 1, seq: m.seq });
    }
  }
  assert.deepEqual([...copiesTo].sort(), [3, 4, 5], 'not to node 2, which acked');
});

test('a leader takes a forwarded Propose once: a duplicate, or one for an earlier reign, is dropped (it would choose its commands twice)', () => {
  const n = leader();
  const b = n.status().ballot;
  const propose: Message = { type: MsgType.Propose, from: 2, to: 1, ballot: b, incarnation: 7, seq: 1, values: [value('once')] };
  n.step(propose);
  n.step(propose); // the network delivers it again
  n.step({ ...propose, ballot: b - 1, seq: 2 }); // meant for an earlier reign
  const accepts = ofType(sent(cycle(n)), MsgType.Accept).filter((m) => m.to === 2);
  const commands = accepts.flatMap((m) => (m.type === MsgType.Accept ? m.entries : [])).reduce((n, e) => {
    const places = k.decodeBatchPlaces(e.value);
    assert.ok(!('error' in places));
    return n + places.length / 2;
  }, 0);
  assert.equal(commands, 1, `${commands} commands chosen for one forwarded command`);
  // The same sender restarted (another incarnation) counts from 1 again, and is taken.
  n.step({ ...propose, incarnation: 8, values: [value('after restart')] });
  assert.equal(ofType(sent(cycle(n)), MsgType.Accept).filter((m) => m.to === 2).length, 1);
});

test('a peer message with a ballot near 2^53 (no ballot above it can be packed) is dropped: the node still campaigns', () => {
  const top = Number.MAX_SAFE_INTEGER;
  for (const kind of ['js', 'wasm'] as const) {
    const kk = loadKernels(kind);
    const hostile: Message[] = [
      { type: MsgType.Nack, from: 3, to: 2, ballot: top, slot: 0 },
      { type: MsgType.Prepare, from: 3, to: 2, ballot: top - 65535 - 2, fromSlot: 1 },
      { type: MsgType.Heartbeat, from: 3, to: 2, ballot: top - 65535 - 2, chosenPrefix: 1, seq: 1 },
    ];
    for (const m of hostile) {
      const n = new MultiPaxos({ config: defaultConfig(2, peers), kernels: kk, rng: new Prng(2) });
      n.step(m);
      while (n.hasReady()) cycle(n);
      electionNow(n);
      assert.equal(n.status().role, 'candidate', `${kind}: type ${m.type}`);
      assert.ok(Number.isSafeInteger(n.status().ballot) && kk.ballotNode(n.status().ballot) === 2, `${kind}: type ${m.type}`);
    }
  }
});

test('a Promise reporting a slot near 2^53 costs the new leader no map entry per hole: it leads and proposes no-ops from its start', () => {
  const n = node(1);
  electionNow(n)
  const b = n.status().ballot;
  cycle(n);
  const far = Number.MAX_SAFE_INTEGER;
  // Before, becomeLeader filled a no-op into a Map for every slot up to `far` and threw (Map maximum size exceeded).
  n.step({ type: MsgType.Promise, from: 2, to: 1, ballot: b, fromSlot: 1, chosenPrefix: 1, coverFrom: 0, more: false, entries: [{ slot: 3, ballot: ballot(0, 2), value: value('x') }, { slot: far, ballot: ballot(0, 2), value: value('y') }] });
  assert.equal(n.status().role, 'leader');
  const rd = cycle(n);
  const accept = ofType(rd.messages, MsgType.Accept).find((m) => m.to === 2);
  assert.ok(accept && accept.type === MsgType.Accept);
  const pipeline = defaultConfig(1, peers).pipeline;
  assert.deepEqual(accept.entries.map((e) => e.slot), Array.from({ length: pipeline }, (_, i) => i + 1));
  assert.deepEqual(accept.entries.slice(0, 4).map((e) => e.value), [value(), value(), value('x'), value()]);
});

test('a learner whose fetch comes back empty asks again only after the usual gap, not on every tick', () => {
  const n = node(2);
  const b = ballot(1, 1);
  n.step({ type: MsgType.Heartbeat, from: 1, to: 2, ballot: b, chosenPrefix: 5, seq: 1 });
  cycle(n);
  let requests = 0;
  for (let i = 0; i < 10; i++) {
    n.tick();
    if (!n.hasReady()) continue;
    for (const m of ofType(cycle(n).messages, MsgType.LearnRequest)) {
      requests++;
      // The leader lacks the slots too (it is fetching them itself): an empty reply.
      n.step({ type: MsgType.LearnReply, from: 1, to: 2, chosenPrefix: 1, entries: [] });
      assert.equal(m.to, 1);
    }
  }
  assert.equal(requests, 5);
});

test('a restart with 100,000 chosen slots to replay checks invariants in linear time, not per slot handed out', () => {
  // The log between snapshots is snapshotSlots long (100,000 by default). Restored, every slot
  // from the snapshot to the chosen prefix waits in chosenValues, handed out APPLY_MAX per Ready;
  // invariants() scanned the whole map after every input, about 4.9 million keys here.
  const slots = 100_000;
  const v = value('x');
  const records = Array.from({ length: slots }, (_, i) => ({ position: i + 1, ballot: ballot(1, 1), value: v }));
  const n = node(2, { hardState: { ballot: ballot(1, 1), vote: 0 }, records, chosenPrefix: slots + 1, appliedPrefix: 1, snapshot: null, rejoining: false });
  const chosenValues = (n as unknown as { chosenValues: Map<number, Uint8Array> }).chosenValues;
  assert.equal(chosenValues.size, slots);
  let scanned = 0;
  const keys = chosenValues.keys.bind(chosenValues);
  chosenValues.keys = function* () {
    for (const s of keys()) { scanned++; yield s; }
  } as typeof chosenValues.keys;
  let applied = 0;
  while (n.hasReady()) {
    const rd = n.ready();
    applied += rd.apply.length;
    n.advance(rd);
    n.tick();
  }
  assert.equal(applied, slots);
  assert.equal(n.status().appliedPrefix, slots + 1);
  assert.ok(scanned < slots, `invariants() scanned ${scanned} keys of chosenValues to replay ${slots} slots`);
});

test('a leader Nacked by a member that returns with a higher ballot runs phase 1 again sticky to itself: the returner\'s still higher Prepare is not promised, and the leader leads again', () => {
  const n = leader();
  const b = n.status().ballot;
  // Node 3 was cut off and campaigned alone, raising its promise; back, it Nacks the leader.
  n.step({ type: MsgType.Nack, from: 3, to: 1, ballot: ballot(5, 3), slot: 0 });
  assert.equal(n.status().role, 'candidate', 'phase 1 again, at once');
  const c = n.status().ballot;
  assert.ok(c > ballot(5, 3));
  const prepares = ofType(sent(cycle(n)), MsgType.Prepare);
  assert.deepEqual(prepares.map((m) => m.to).sort(), [2, 3]);
  // Before the leader's Prepare reaches it, node 3 campaigns again, above the leader's new ballot.
  // Node 2 is sticky to the leader and ignores it; the leader must too, or 3 wins with its vote.
  n.step({ type: MsgType.Prepare, from: 3, to: 1, ballot: ballot(9, 3), fromSlot: 1 });
  const rd = n.hasReady() ? cycle(n) : null;
  assert.equal(rd === null ? 0 : ofType(sent(rd), MsgType.Promise).length, 0, 'the returner\'s Prepare is promised');
  assert.equal(n.status().ballot, c);
  n.step({ type: MsgType.Promise, from: 2, to: 1, ballot: c, fromSlot: 1, chosenPrefix: 1, coverFrom: 0, more: false, entries: [] });
  assert.equal(n.status().role, 'leader', 'itself and node 2: a quorum');
  assert.ok(c > b);
});

test('a Propose a follower forwarded to the leader\'s earlier ballot of this life is taken after it ran phase 1 again; a duplicate and another life\'s are not', () => {
  // Node 1 in a later life: it led at ballot(2, 1) before its restart, and promised ballot(3, 2) since.
  const n = node(1, { hardState: { ballot: ballot(3, 2), vote: 0 }, records: [], chosenPrefix: 1, appliedPrefix: 1, snapshot: null, rejoining: false });
  electionNow(n)
  const b = n.status().ballot;
  assert.ok(b > ballot(3, 2));
  cycle(n);
  for (const from of [2, 3]) n.step({ type: MsgType.Promise, from, to: 1, ballot: b, fromSlot: 1, chosenPrefix: 1, coverFrom: 0, more: false, entries: [] });
  assert.equal(n.status().role, 'leader');
  cycle(n);
  const text = (x: string): Uint8Array => new TextEncoder().encode(x);
  const propose: Message = { type: MsgType.Propose, from: 2, to: 1, ballot: b, incarnation: 7, seq: 1, values: [text('first')] };
  n.step(propose);
  cycle(n);
  n.step({ type: MsgType.Nack, from: 3, to: 1, ballot: ballot(5, 3), slot: 0 });
  const c = n.status().ballot;
  cycle(n);
  n.step({ type: MsgType.Promise, from: 2, to: 1, ballot: c, fromSlot: 1, chosenPrefix: 1, coverFrom: 0, more: false, entries: [] });
  assert.equal(n.status().role, 'leader');
  cycle(n);
  // Node 2 forwarded these before it heard of ballot c: the first again (a duplicate), then a new one.
  n.step(propose);
  n.step({ ...propose, seq: 2, values: [text('second')] });
  // To its ballot of the earlier life: this life cannot know that life's duplicates.
  n.step({ ...propose, ballot: ballot(2, 1), seq: 3, values: [text('old life')] });
  const commands = ofType(sent(cycle(n)), MsgType.Accept).filter((m) => m.to === 2)
    .flatMap((m) => (m.type === MsgType.Accept ? m.entries : []))
    .flatMap((e) => {
      const cmds = k.decodeBatch(e.value);
      assert.ok(Array.isArray(cmds));
      return cmds.map((x) => new TextDecoder().decode(x));
    });
  assert.deepEqual(commands.filter((x) => x !== 'first'), ['second'], `forwarded to ballot ${b}, taken at ${c}; the earlier life's dropped: ${JSON.stringify(commands)}`);
  assert.ok(commands.filter((x) => x === 'first').length <= 1, `the duplicate is dropped: ${JSON.stringify(commands)}`);
});

test('a leader that runs phase 1 again after a Nack keeps its pending commands and takes new ones: they go out once it leads again, and are dropped if it loses', () => {
  const commandsTo2 = (rd: Ready): string[] => ofType(sent(rd), MsgType.Accept).filter((m) => m.to === 2)
    .flatMap((m) => (m.type === MsgType.Accept ? m.entries : []))
    .flatMap((e) => {
      const cmds = k.decodeBatch(e.value);
      assert.ok(Array.isArray(cmds));
      return cmds.map((x) => new TextDecoder().decode(x));
    });
  const text = (x: string): Uint8Array => new TextEncoder().encode(x);
  for (const outcome of ['wins', 'loses'] as const) {
    const n = leader(64);
    assert.equal(n.propose([text('pending')]), 'proposed'); // batched, not yet in a slot
    n.step({ type: MsgType.Nack, from: 3, to: 1, ballot: ballot(5, 3), slot: 0 });
    assert.equal(n.status().role, 'candidate');
    const c = n.status().ballot;
    assert.equal(n.propose([text('meanwhile')]), 'proposed', 'taken while it runs phase 1 again, not refused as no-leader');
    assert.deepEqual(commandsTo2(cycle(n)), [], 'nothing is proposed before phase 1 completes');
    if (outcome === 'wins') {
      n.step({ type: MsgType.Promise, from: 2, to: 1, ballot: c, fromSlot: 1, chosenPrefix: 1, coverFrom: 0, more: false, entries: [] });
      assert.equal(n.status().role, 'leader');
      assert.deepEqual(commandsTo2(cycle(n)).sort(), ['meanwhile', 'pending']);
    } else {
      // Another candidate's higher ballot, from a leader that won: its word makes this node a follower.
      n.step({ type: MsgType.Heartbeat, from: 2, to: 1, ballot: ballot(9, 2), chosenPrefix: 1, seq: 1 });
      assert.equal(n.status().role, 'follower');
      assert.equal(n.propose([text('later')]), 'forwarded');
      assert.equal((n as unknown as { batcher: { count: number } }).batcher.count, 0, 'the kept commands are dropped with the campaign');
    }
  }
});

test('a follower stays sticky to its leader while that leader runs phase 1 again, however long the phase takes; a retry an election timeout later extends nothing', () => {
  const n = node(2);
  const b1 = ballot(1, 1);
  n.step({ type: MsgType.Heartbeat, from: 1, to: 2, ballot: b1, chosenPrefix: 1, seq: 1 });
  cycle(n);
  const min = defaultConfig(2, peers).electionTicksMin;
  for (let i = 0; i < min - 2; i++) n.tick();
  // Its leader re-runs phase 1 (a member came back Nacking): promised, and the stickiness starts over.
  n.step({ type: MsgType.Prepare, from: 1, to: 2, ballot: ballot(6, 1), fromSlot: 1 });
  cycle(n);
  for (let i = 0; i < min - 2; i++) n.tick();
  // The returning member's next Prepare, above: ignored, the leader's phase 1 is still running.
  n.step({ type: MsgType.Prepare, from: 3, to: 2, ballot: ballot(7, 3), fromSlot: 1 });
  assert.equal(n.hasReady() ? ofType(sent(cycle(n)), MsgType.Promise).length : 0, 0, 'the returner won this node\'s vote during its leader\'s phase 1');
  // The leader's phase 1 did not complete; its retry comes an election timeout later and extends nothing.
  for (let i = 0; i < 2; i++) n.tick();
  n.step({ type: MsgType.Prepare, from: 1, to: 2, ballot: ballot(8, 1), fromSlot: 1 });
  cycle(n);
  n.step({ type: MsgType.Prepare, from: 3, to: 2, ballot: ballot(9, 3), fromSlot: 1 });
  assert.equal(ofType(sent(cycle(n)), MsgType.Promise).length, 1, 'another candidate is promised once the leader\'s stickiness ran out');
});

test('pre-vote: a timed-out follower asks first and raises nothing until a quorum would take part; a node hearing a live leader refuses, changing nothing; the campaign goes above the promises reported', () => {
  const n = node(1);
  const inner = n as unknown as { preBallot: number };
  while (inner.preBallot === 0) n.tick();
  assert.equal(n.status().role, 'follower');
  let rd = cycle(n);
  assert.equal(rd.hardState, null, 'nothing raised, nothing persisted');
  assert.deepEqual(ofType(rd.messages, MsgType.PrePrepare).map((m) => m.to).sort(), [2, 3]);
  assert.equal(ofType(rd.messages, MsgType.Prepare).length, 0);
  const pre = inner.preBallot;
  // Node 2 refuses (it hears a leader) and reports its promise; node 3 grants: a quorum with itself.
  n.step({ type: MsgType.PrePromise, from: 2, to: 1, ballot: pre, promised: ballot(7, 2), granted: false });
  assert.equal(n.status().role, 'follower', 'its own grant and a refusal are not a quorum');
  n.step({ type: MsgType.PrePromise, from: 3, to: 1, ballot: pre + 1, promised: 0, granted: true });
  assert.equal(n.status().role, 'follower', 'a grant for another round does not count');
  n.step({ type: MsgType.PrePromise, from: 3, to: 1, ballot: pre, promised: 0, granted: true });
  assert.equal(n.status().role, 'candidate');
  assert.ok(n.status().ballot > ballot(7, 2), 'above the promise the refusal reported');
  rd = cycle(n);
  assert.deepEqual(ofType(sent(rd), MsgType.Prepare).map((m) => m.to).sort(), [2, 3]);

  // A follower of a live leader refuses, and its state is untouched; once the leader is silent for an election timeout, it grants.
  const f = node(2);
  f.step({ type: MsgType.Heartbeat, from: 1, to: 2, ballot: ballot(1, 1), chosenPrefix: 1, seq: 1 });
  cycle(f);
  f.step({ type: MsgType.PrePrepare, from: 3, to: 2, ballot: ballot(2, 3) });
  rd = cycle(f);
  assert.equal(rd.hardState, null);
  assert.deepEqual(ofType(rd.messages, MsgType.PrePromise), [{ type: MsgType.PrePromise, from: 2, to: 3, ballot: ballot(2, 3), promised: ballot(1, 1), granted: false }]);
  assert.equal(f.status().leader, 1);
  for (let i = 0; i < defaultConfig(2, peers).electionTicksMin; i++) f.tick();
  while (f.hasReady()) cycle(f);
  f.step({ type: MsgType.PrePrepare, from: 3, to: 2, ballot: ballot(2, 3) });
  assert.deepEqual(ofType(cycle(f).messages, MsgType.PrePromise).map((m) => m.type === MsgType.PrePromise && m.granted), [true]);
  assert.equal(f.status().ballot, ballot(1, 1), 'granting promises nothing');
});
