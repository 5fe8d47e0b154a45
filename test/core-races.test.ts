// Races in the protocol cores that no scenario file and no simulator seed had reached, each found
// by reading the code and driven here by hand, message by message: what must hold after each.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MultiPaxos } from '../src/protocol/multipaxos/index.js';
import { MsgType, type Message } from '../src/protocol/messages.js';
import type { PlantedBug, Protocol } from '../src/protocol/types.js';
import { protocolFactory } from '../src/sim/protocols.js';
import { Net, cmds } from './core-net.js';

type Bugs = Partial<Record<PlantedBug, boolean>>;
const between = (a: number, b: number) => (m: Message): boolean => (m.from === a && m.to === b) || (m.from === b && m.to === a);
const isAppend = (m: Message): boolean => m.type === MsgType.Accept || m.type === MsgType.AppendEntries;

/** Two nodes applied different values at one position. */
const disagreement = (net: Net<Protocol>): string | null => {
  const logs = [...net.nodes.values()].map((n) => n.applied);
  for (let i = 0; i < Math.max(...logs.map((l) => l.length)); i++) {
    const seen = new Set(logs.filter((l) => i < l.length).map((l) => l[i]));
    if (seen.size > 1) return `position ${i + 1}: ${[...seen].join(' / ')}`;
  }
  return null;
};

/** The race of a leader that counts an entry committed before its own copy is durable; fails an assertion if it shows. */
const commitRace = (protocol: 'multipaxos' | 'raft', bugs: Bugs = {}): void => {
  // 1 (A) accepts the leader's entry, is wiped and rejoins; 3 (C) answers A, then takes the
  // entry from a delayed message: A and C were a majority, and C applies it once told. If the
  // leader (2, B) may count that majority before its own copy is durable, and then crashes
  // with the copy unwritten, B and A (answered by B's and C's replies, none showing the entry)
  // elect a leader that puts another value there.
  // B's writes are durable until it leads, and none of its reign's are (Raft's no-op included).
  const net = new Net<Protocol>(3, { readysOutstandingMax: 64 }, (o) => protocolFactory(protocol)({ ...o, bugs }));
  net.nodes.get(2)!.autoPersist = false;
  for (let i = 0; i < 500 && net.role(2) !== 'leader'; i++) {
    net.core(2).tick();
    net.process();
    net.persist(2);
    for (let j = 0; j < 6 && net.role(2) !== 'leader'; j++) { net.deliver(); if (net.role(2) !== 'leader') net.persist(2); }
  }
  assert.equal(net.role(2), 'leader');
  net.core(2).propose(cmds('v'));
  net.process();
  const toC = net.queue.filter((m) => m.to === 3 && isAppend(m));
  net.queue = net.queue.filter((m) => !toC.includes(m));
  for (let i = 0; i < 6; i++) net.deliver(between(1, 2));
  net.queue = [];
  net.wipe(1);
  net.process();
  net.queue = net.queue.filter((m) => m.to !== 2); // A's question to B is lost; C answers it
  for (let i = 0; i < 3; i++) net.deliver(between(1, 3));
  net.queue.push(...toC);
  for (let i = 0; i < 4; i++) net.deliver(between(2, 3));
  for (let t = 0; t < 10 && !net.nodes.get(3)!.applied.includes('v'); t++) {
    for (const id of [2, 3]) net.core(id).tick();
    net.process();
    for (let i = 0; i < 4; i++) net.deliver(between(2, 3));
  }
  const cApplied = [...net.nodes.get(3)!.applied];
  net.crash(2);
  net.nodes.get(2)!.autoPersist = true;
  net.restart(2);
  net.isolate(3);
  for (let i = 0; i < 400 && net.role(1) !== 'leader' && net.role(2) !== 'leader'; i++) net.tickAll(1);
  const l = net.role(1) === 'leader' ? 1 : 2;
  assert.equal(net.role(l), 'leader', 'A and B elect a leader once A rejoined');
  net.core(l).propose(cmds('w'));
  net.tickAll(5);
  assert.equal(disagreement(net), null, `C applied ${JSON.stringify(cApplied)} before the crash`);
  // Once C is back, it ends with what the others applied.
  net.cuts.clear();
  net.tickAll(60);
  assert.equal(disagreement(net), null);
  assert.deepEqual(net.nodes.get(3)!.applied, net.nodes.get(l)!.applied);
  assert.ok(net.nodes.get(l)!.applied.includes('w'));
};

for (const protocol of ['multipaxos', 'raft'] as const) {
  test(`${protocol}: a leader counts an entry committed only with its own copy durable, so a wiped member rejoining cannot vote it away`, () => commitRace(protocol));
  test(`${protocol}: with commitWithoutOwnCopy planted, the same race applies two values at one position`, () => {
    assert.throws(() => commitRace(protocol, { commitWithoutOwnCopy: true }), /position \d+: w \/ v/);
  });
}

/** The race of a learner that fetches a chosen value at a ballot below its own accept; fails an assertion if it shows. */
const learnRace = (bugs: Bugs = {}): void => {
  // R (3) chooses x in slot 1 and, later, v in slot 2 at 1.3; Q (2) accepted w in slot 2 at 1.2
  // alone. P (1), elected late at 1.1 by delayed Promises, learned slot 2 = v and re-proposed it
  // at 1.1 under its own ballot. Q then fetches slot 2 from P: `2@1.1:v`. Keeping its own w
  // because 1.2 > 1.1 would apply w where the others applied v.
  const net = new Net<MultiPaxos>(5, { electionTicksMin: 30, electionTicksMax: 60 }, (o) => new MultiPaxos({ ...o, bugs }));
  const [P, Q, R] = [1, 2, 3];
  const link = (from: number, to: number, ...types: MsgType[]) => (m: Message): boolean =>
    m.from === from && m.to === to && (types.length === 0 || types.includes(m.type));
  const any = (...ps: ((m: Message) => boolean)[]) => (m: Message): boolean => ps.some((p) => p(m));
  /** Rounds of delivering what `pick` takes and dropping the rest, except what `keep` sets aside (returned). */
  const only = (pick: (m: Message) => boolean, keep: (m: Message) => boolean = () => false): Message[] => {
    const kept: Message[] = [];
    for (let i = 0; i < 60 && net.queue.length > 0; i++) {
      const round = net.queue;
      net.queue = [];
      for (const m of round) {
        if (keep(m)) kept.push(m);
        else if (pick(m) && net.nodes.get(m.to)!.core) { net.core(m.to).step(m); net.process(); }
      }
    }
    net.queue = [];
    return kept;
  };
  const tickUntil = (id: number, p: (m: Message) => boolean): void => {
    for (let i = 0; i < 500 && !net.queue.some(p); i++) { net.core(id).tick(); net.process(); }
  };
  const withQuorum = (x: number) => any(link(x, 4), link(x, 5), link(4, x), link(5, x));
  const phase1 = [MsgType.PrePrepare, MsgType.PrePromise, MsgType.Prepare, MsgType.Promise];
  const elect = (x: number, keep?: (m: Message) => boolean): Message[] => {
    tickUntil(x, link(x, 4, MsgType.PrePrepare));
    return only((m) => withQuorum(x)(m) && phase1.includes(m.type), keep);
  };
  tickUntil(R, link(R, 1, MsgType.PrePrepare));
  only(() => true);
  net.core(R).propose(cmds('x'));
  net.process();
  only((m) => !(m.from === R && (m.to === P || m.to === 4)) && m.type !== MsgType.LearnRequest);
  net.core(P).read(100, 'quorum');
  net.process();
  const readIndex = only(() => false, link(P, R, MsgType.ReadIndex));
  for (let i = 0; i < 31; i++) for (const id of [1, 2, 4, 5]) net.core(id).tick();
  net.process();
  net.queue = [];
  const promisesToP = elect(P, any(link(4, P, MsgType.Promise), link(5, P, MsgType.Promise)));
  elect(Q);
  net.core(Q).propose(cmds('w'));
  net.process();
  net.queue = [];
  for (let i = 0; i < 70; i++) net.core(R).tick();
  net.process();
  net.queue = [];
  elect(R);
  net.core(R).propose(cmds('v'));
  net.process();
  only(withQuorum(R));
  net.queue.push(...readIndex);
  only(any(withQuorum(R), link(P, R, MsgType.ReadIndex), link(R, P, MsgType.ReadIndexReply)));
  for (let i = 0; i < 60 && net.core(P).status().holes === 0; i++) {
    net.core(P).tick();
    net.process();
    only(any(link(P, 4, MsgType.LearnRequest), link(4, P, MsgType.LearnReply)));
  }
  net.queue.push(...promisesToP);
  only(any(link(4, P), link(5, P)));
  assert.equal(net.role(P), 'leader', 'P leads at its stale ballot');
  net.core(R).tick();
  net.process();
  only(any(withQuorum(R), link(R, Q, MsgType.Heartbeat)));
  for (let i = 0; i < 300 && net.core(Q).status().chosenPrefix < 3; i++) {
    net.core(Q).tick();
    net.process();
    only(any(link(Q, P, MsgType.LearnRequest), link(P, Q, MsgType.LearnReply)));
  }
  assert.deepEqual(net.nodes.get(R)!.applied, ['x', 'v']);
  assert.deepEqual(net.nodes.get(Q)!.applied, ['x', 'v']);
  assert.equal(disagreement(net as unknown as Net<Protocol>), null);
};

test('multipaxos: a learner takes a chosen value it fetches even when its own accept of another value has a higher ballot (a stale leader re-proposed the chosen one lower)', () => learnRace());
test('multipaxos: with learnKeepsOwnValue planted, the same race has the learner apply its own value', () => {
  assert.throws(() => learnRace({ learnKeepsOwnValue: true }), (e: Error) => e instanceof assert.AssertionError && /'w'/.test(e.message));
});

test('raft: a follower whose conflicting entries lie wholly below the leader\'s snapshot is sent the snapshot, not probed forever', () => {
  // 3 led term 1 and appended 6..10 while cut off. 1 leads term 3 with its log trimmed into a
  // snapshot past 3's match (5): every rejection from 3 names term 1, which 1 holds no entry of
  // (they are in its snapshot), so the hint points at or below the match. With 2 down nothing
  // else moves, and unless the leader then goes from match + 1 (below its snapshot: it offers
  // it), 3 never catches up.
  const c = new Net(3);
  const electAlone = (id: number, others: number[]): void => {
    for (const o of others) for (let t = 0; t < 10; t++) c.core(o).tick();
    c.process();
    c.queue = c.queue.filter((m) => !others.includes(m.from));
    for (let i = 0; i < 200 && c.role(id) !== 'leader'; i++) { c.core(id).tick(); c.stabilize(); }
    assert.equal(c.role(id), 'leader');
  };
  const compact = (id: number, prefix: number): void => {
    c.core(id).compact(prefix, new TextEncoder().encode(JSON.stringify(c.nodes.get(id)!.applied.slice(0, prefix - 1))));
    c.process();
  };
  electAlone(3, [1, 2]);
  for (const w of 'abcd') { c.core(3).propose(cmds(w)); c.stabilize(); }
  c.tickAll(1);
  c.isolate(3);
  for (const w of ['x1', 'x2', 'x3', 'x4', 'x5']) { c.core(3).propose(cmds(w)); c.process(); }
  electAlone(1, [2]);
  for (const w of 'ef') { c.core(1).propose(cmds(w)); c.stabilize(); }
  c.tickAll(1);
  compact(1, 6);
  c.cut(1, 2);
  for (const w of 'ghij') { c.core(1).propose(cmds(w)); c.process(); }
  c.crash(1);
  c.restart(1);
  c.heal(1, 2);
  c.stabilize();
  for (let t = 0; t < 10; t++) c.core(2).tick();
  c.process();
  c.queue = [];
  while (c.role(1) === 'follower') { c.core(1).tick(); c.process(); }
  for (let i = 0; i < 10 && c.role(1) !== 'leader'; i++) c.deliver();
  assert.equal(c.role(1), 'leader');
  c.crash(2);
  c.stabilize();
  c.heal(1, 3);
  c.heal(2, 3);
  c.core(1).tick();
  c.process();
  c.deliver((m) => m.to === 3);
  c.deliver((m) => m.to === 1);
  compact(1, c.core(1).status().appliedPrefix);
  for (let i = 0; i < 300 && c.core(3).status().chosenPrefix < c.core(1).status().chosenPrefix; i++) {
    c.core(1).tick();
    c.core(3).tick();
    c.stabilize();
  }
  assert.equal(c.core(3).status().chosenPrefix, c.core(1).status().chosenPrefix, '3 caught up with the leader');
  assert.ok(c.core(1).status().chosenPrefix > 13, 'the new term\'s entries are committed with 3');
  assert.equal(disagreement(c as unknown as Net<Protocol>), null);
});
