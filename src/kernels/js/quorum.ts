// Quorum counting twins: phase-1 Promise counting (one bit per member) and Raft's commit rule
// (the largest index that a quorum of match indexes has reached).

import assert from 'node:assert/strict';
import type { PromiseCounter } from '../types.js';
import { MEMBER_MAX } from '../layout.js';

export class JsPromiseCounter implements PromiseCounter {
  /** Bit m set if member m has promised. */
  private bits = 0;
  /** Promises counted. Invariant: count === popcount(bits). */
  private promised = 0;
  /** Promises that make a quorum. */
  private quorum = 1;

  get count(): number { return this.promised; }

  reset(quorum: number): void {
    if (!(Number.isInteger(quorum) && quorum >= 1 && quorum <= MEMBER_MAX + 1)) assert.fail(`quorum ${quorum} out of range`);
    this.bits = 0;
    this.promised = 0;
    this.quorum = quorum;
  }

  add(member: number): boolean {
    if (!(Number.isInteger(member) && member >= 0 && member <= MEMBER_MAX)) assert.fail(`member ${member} out of range`);
    const bit = 1 << member;
    if ((this.bits & bit) !== 0) return false;
    this.bits |= bit;
    this.promised++;
    return this.promised === this.quorum;
  }
}

/** The largest index that at least `quorum` of matchIndexes[0..n) have reached. */
export const quorumIndex = (matchIndexes: Float64Array, n: number, quorum: number): number => {
  if (!(Number.isInteger(n) && n >= 1 && n <= matchIndexes.length)) assert.fail(`n ${n} out of range`);
  if (!(Number.isInteger(quorum) && quorum >= 1 && quorum <= n)) assert.fail(`quorum ${quorum} out of range 1..${n}`);
  const sorted = Array.from(matchIndexes.subarray(0, n)).sort((a, b) => b - a);
  return sorted[quorum - 1];
};
