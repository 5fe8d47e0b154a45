// Raft lease reads against the two ways a review found to elect a second leader while the first
// still served reads on its lease (both fixed in the core): a restarted node that forgot its term
// voting at once, and a vote granted in a term taken from a late refusal without the lease check.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MsgType, type Message } from '../src/protocol/messages.js';
import { Net, cmds } from './core-net.js';

// A follower echoes a leader's confirmation round at once (Ready.messages), before the term it
// learned from that leader is durable. If it crashes then, it restarts with term 0, and the core
// lets a node with term 0 vote at once (leaderHeardElapsed = electionTicksMin), although it may
// have acknowledged a round within the lease.
test('a follower that echoed a round before its term 1 was durable, crashed and restarted with term 0 refuses votes for an election timeout: no second leader commits during the lease', () => {
  const c = new Net(3, { electionTicksMin: 20, electionTicksMax: 30, leaseTicks: 18, leaseDriftTicks: 1, heartbeatTicks: 1 });
  // Node 3 is cut off from node 1 from the start (it can talk to node 2).
  c.cut(1, 3);
  // Node 1 campaigns and wins with node 2.
  const l = c.core(1);
  while (l.status().role === 'follower') l.tick();
  c.stabilize();
  assert.equal(l.status().role, 'leader');
  l.propose(cmds('a'));
  c.stabilize();
  assert.equal(l.status().chosenPrefix, 3, 'noop and a committed with node 2');
  assert.equal(c.core(3).status().ballot, 0, 'node 3 never heard term 1');

  // Node 1 loses node 2 (both ways). Node 2 will time out; node 3 and node 2 still talk.
  c.cut(1, 2);
  // Tick everyone until node 2 is 6 ticks away from its election timeout.
  for (let i = 0; i < 200; i++) {
    const p2 = c.priv(2);
    if (p2.state === 0 && p2.electionTimeout - p2.electionElapsed === 9) break;
    c.tickAll(1);
  }
  assert.equal(l.status().role, 'leader', 'node 1 still leads (node 2 was active in the last check-quorum window)');
  // Node 3 now hears node 1 for the first time: the heartbeat's AppendEntries and the round.
  c.heal(1, 3);
  c.nodes.get(3)!.autoPersist = false; // node 3's disk is slow
  c.tickAll(1, false); // node 1 sends a heartbeat and a round
  c.deliver((m) => m.to === 3); // node 3 follows node 1 (term 1, not yet durable) and echoes the round at once
  assert.equal(c.core(3).status().ballot, 1);
  c.deliver((m) => m.to === 1 && m.type === MsgType.ReadIndexReply); // node 1 counts the echo
  assert.equal(c.priv(1).leaseValid(), true, 'node 1 holds a lease on {1, 3}');
  const leaseFrom = c.priv(1).now;
  // Node 3 crashes before its Ready (term 1) is durable and restarts at once, cut off from node 1 again.
  c.queue = c.queue.filter((m) => m.from !== 3 && m.to !== 3);
  c.crash(3);
  c.cut(1, 3);
  c.tickAll(5); // down for 5 ticks (the simulator's shortest restart)
  c.restart(3);
  c.nodes.get(3)!.autoPersist = true;
  assert.equal(c.core(3).status().ballot, 0, 'restarted with term 0');
  // Node 2 times out; node 3 must not grant it a vote within node 1's lease.
  let ticks = 0;
  while (c.core(2).status().role !== 'leader' && ticks < 10) { c.tickAll(1); ticks++; }
  if (c.core(2).status().role === 'leader') c.core(2).propose(cmds('w'));
  c.stabilize();
  const w = c.nodes.get(2)!.applied.indexOf('w');
  // Now, still within node 1's lease, a client reads at node 1.
  const now = c.priv(1).now;
  c.core(1).read(99, 'lease');
  c.process();
  const r = c.reads.find((x) => x.id === 99);
  assert.ok(now - leaseFrom < 18, 'the read began within the lease');
  assert.ok(w < 0 || r === undefined || r.index >= w + 1, `stale lease read at node 1: index ${r?.index}, but w was committed at ${w + 1} before the read began`);
});

// Leader stickiness (inLease) is checked only for a RequestVote with a higher term. A follower
// that acknowledged the leader's round can still adopt a higher term from a (late) Vote refusal,
// and then grant a RequestVote of that same term without any lease check.
test('a follower that echoed a round and then took a higher term from a late Vote refusal grants no vote in that term during the lease', () => {
  const c = new Net(5, { electionTicksMin: 10, electionTicksMax: 20, leaseTicks: 8, leaseDriftTicks: 1, heartbeatTicks: 1 });
  const L = 1, F = 2, C = 3, D = 4, E = 5;
  const l = c.core(L);
  while (l.status().role === 'follower') l.tick();
  c.stabilize();
  l.propose(cmds('a'));
  c.stabilize();
  // Right after a check-quorum tick of the leader.
  for (let i = 0; i < 50; i++) { c.tickAll(1); if (c.priv(L).electionElapsed === 0) break; }
  assert.equal(c.priv(L).electionElapsed, 0);
  const w0 = c.priv(L).now;
  // Partition {L, D} | {C, E}; F talks only to C and E for now.
  for (const a of [L, D]) for (const b of [C, E, F]) c.cut(a, b);
  // Election timeouts as the PRNG could have drawn them (all in [10, 20)).
  c.priv(C).electionTimeout = 11;
  c.priv(F).electionTimeout = 15;
  c.priv(E).electionTimeout = 19;
  // The network is slow from C and E to F: their Votes and C's RequestVote to F are delayed.
  c.holdIf = (m: Message) => m.to === F && (m.type === MsgType.Vote || (m.type === MsgType.RequestVote && !m.preVote));
  c.tickAll(16);
  assert.equal(c.core(C).status().role, 'candidate');
  assert.equal(c.core(C).status().ballot, 2, 'C is a candidate in term 2 (pre-votes from E and F)');
  assert.equal(c.core(F).status().ballot, 1);
  assert.equal(l.status().role, 'leader', 'L still leads (D and F were active in each check-quorum window)');
  // F hears L again for a moment: follows it and echoes its round.
  c.heal(L, F);
  c.tickAll(1);
  assert.equal(c.core(F).status().leader, L);
  assert.equal(c.priv(L).leaseValid(), true, 'L holds a lease on {L, D, F}');
  const leaseAt = c.priv(L).now;
  c.cut(L, F);
  // The delayed messages to F arrive, refusals first (reordered).
  const held = c.held.sort((a, b) => (a.type === MsgType.Vote ? 0 : 1) - (b.type === MsgType.Vote ? 0 : 1));
  c.held = [];
  c.holdIf = () => false;
  c.queue.push(...held);
  c.stabilize();
  assert.equal(c.core(F).status().ballot, 2, 'F took term 2 from the late refusal');
  assert.notEqual(c.core(C).status().role, 'leader', 'F refused C its vote: L\'s lease holds');
  if (c.core(C).status().role === 'leader') c.core(C).propose(cmds('w'));
  c.stabilize();
  const w = c.nodes.get(C)!.applied.indexOf('w');
  l.read(99, 'lease');
  c.process();
  const r = c.reads.find((x) => x.id === 99);
  assert.ok(c.priv(L).now - leaseAt < 8, 'the read began within the lease');
  assert.ok(w < 0 || r === undefined || r.index > w, `stale lease read at L: index ${r?.index}, w committed at ${w + 1}`);
});
