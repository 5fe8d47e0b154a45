// A test helper for the Multi-Paxos core driven by hand: run its election now.

import assert from 'node:assert/strict';
import type { MultiPaxos } from '../src/protocol/multipaxos/index.js';
import { MsgType } from '../src/protocol/messages.js';

/**
 * Tick `n` until its election timeout fires, then grant its pre-vote as every peer would: it then
 * campaigns (a candidate, its Prepares queued). `each` runs after every tick.
 */
export const electionNow = (n: MultiPaxos, each: () => void = () => {}): void => {
  const inner = n as unknown as { preBallot: number; others: number[] };
  while (n.status().role === 'follower' && inner.preBallot === 0) { n.tick(); each(); }
  const to = n.status().id;
  for (const from of inner.others) {
    if (n.status().role !== 'follower') break;
    n.step({ type: MsgType.PrePromise, from, to, ballot: inner.preBallot, promised: 0, granted: true });
  }
  assert.notEqual(n.status().role, 'follower', 'the pre-vote was granted, and it campaigned');
};
