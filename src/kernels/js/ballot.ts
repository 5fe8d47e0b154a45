// Ballots: `round * 65536 + nodeId`, a safe integer, so that comparing two ballots is comparing
// two numbers and every node owns a disjoint set of them. Node id 0 means "none"; ballot 0 is
// "no ballot yet", below every real one.

import assert from 'node:assert/strict';
import type { BallotKernel } from '../types.js';

/** Node ids take the low 16 bits of a ballot. */
export const NODE_SPAN = 65536;
/** The largest round whose ballots are all safe integers. */
export const ROUND_MAX = Math.floor(Number.MAX_SAFE_INTEGER / NODE_SPAN) - 1;

const assertBallot = (b: number): void => {
  if (!(Number.isSafeInteger(b) && b >= 0)) assert.fail(`ballot ${b} is not a non-negative safe integer`);
};

export const ballotPack = (round: number, nodeId: number): number => {
  if (!(Number.isSafeInteger(round) && round >= 0 && round <= ROUND_MAX)) assert.fail(`round ${round} out of range`);
  if (!(Number.isInteger(nodeId) && nodeId >= 0 && nodeId < NODE_SPAN)) assert.fail(`node id ${nodeId} out of range`);
  return round * NODE_SPAN + nodeId;
};

export const ballotRound = (ballot: number): number => {
  assertBallot(ballot);
  return Math.floor(ballot / NODE_SPAN);
};

export const ballotNode = (ballot: number): number => {
  assertBallot(ballot);
  return ballot % NODE_SPAN;
};

export const ballotCompare = (a: number, b: number): number => (a < b ? -1 : a > b ? 1 : 0);

export const ballotNextAbove = (above: number, nodeId: number): number => {
  const round = ballotRound(above);
  const same = ballotPack(round, nodeId);
  return same > above ? same : ballotPack(round + 1, nodeId);
};

export const jsBallots: BallotKernel = { ballotPack, ballotRound, ballotNode, ballotCompare, ballotNextAbove };
