// A Raft core fed AppendEntries that no correct member sends (a peer that passed the handshake but
// runs a buggy or hostile build): a second leader in the leader's own term, a second leader for a
// follower that knows its leader, and an AppendEntries that disagrees with committed entries. Each
// must be dropped, never thrown: a throw out of step() ends the node (the transport calls it from
// its message handler, with no catch).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MsgType, type AppendEntries } from '../src/protocol/messages.js';
import { Net, cmds, k } from './core-net.js';

const committedLog = (c: Net, id: number): unknown[] => {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const p = c.priv(id) as any;
  return (p.log as { index: number; term: number }[]).filter((e) => e.index <= p.commitIndex).map((e) => [e.index, e.term]);
};

test('hostile AppendEntries (a second leader in the term, a conflict at a committed index) are dropped, not thrown', () => {
  const c = new Net(3);
  const l = c.core(1);
  while (l.status().role === 'follower') l.tick();
  c.stabilize();
  assert.equal(l.status().role, 'leader');
  l.propose(cmds('a', 'b'));
  c.stabilize();
  c.tickAll(2);
  const term = l.status().ballot;
  assert.equal(c.core(3).status().chosenPrefix, 3, 'node 3 holds the noop and a committed entry');
  const leaderBefore = l.status();
  const f3Before = c.core(3).status();
  const f3Log = committedLog(c, 3);

  const base: AppendEntries = {
    type: MsgType.AppendEntries, from: 2, to: 1, term, prevIndex: 0, prevTerm: 0, commitIndex: 0, entries: [],
  };
  // Node 2 claims to lead the leader's own term, to the leader and to node 3 (which follows node 1).
  assert.doesNotThrow(() => l.step(base), 'the leader must drop an AppendEntries of its own term');
  assert.doesNotThrow(() => c.core(3).step({ ...base, to: 3 }), 'a follower must drop a second leader of its term');
  c.process();
  assert.deepEqual(l.status(), leaderBefore);
  assert.deepEqual(c.core(3).status(), f3Before);

  // Node 2 claims a higher term and disagrees with node 3's committed entries: at the prefix check,
  // and with an entry that would replace a committed one.
  const f3 = c.core(3);
  assert.doesNotThrow(() => f3.step({ ...base, to: 3, term: term + 1, prevIndex: 2, prevTerm: term + 1 }), 'a prefix conflict at a committed index is dropped');
  assert.doesNotThrow(() => f3.step({
    ...base, to: 3, term: term + 1, prevIndex: 1, prevTerm: term,
    entries: [{ index: 2, term: term + 1, value: k.encodeBatch(cmds('evil')) }],
  }), 'an entry replacing a committed one is dropped');
  c.process();
  assert.deepEqual(committedLog(c, 3), f3Log, 'no committed entry changed');
  assert.equal(f3.status().chosenPrefix, f3Before.chosenPrefix);
  f3.invariants();
});
