// The table of a node's pending writes (a ring by request seq): answers, timeouts in seq order,
// growth, its limits, and seqs wrapping past 2^32; and when a leader change gives up on them. No ports.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LeaderChanges, PendingWrites } from '../src/node/pending-writes.js';
import { RequestError } from '../src/node/node.js';

type Heard = [number, string, string | undefined];

function table(countMax = 100_000, spanMax = 1 << 20): { t: PendingWrites<string>; heard: Heard[]; done: (err: RequestError | null, r: string | undefined, tag: number) => void } {
  const heard: Heard[] = [];
  return { t: new PendingWrites<string>(countMax, spanMax), heard, done: (err, r, tag) => heard.push([tag, err === null ? 'ok' : err.kind, r]) };
}

test('writes are answered once, in any order, with their tags; unknown seqs are ignored', () => {
  const { t, heard, done } = table();
  t.startAt(1);
  for (let s = 1; s <= 5; s++) t.add(s, done, s * 10, s, 1000 + s);
  assert.equal(t.settle(3, null, 'c'), 3, 'settle returns when the write was proposed');
  assert.equal(t.settle(3, null, 'again'), -1, 'a write is answered once');
  assert.equal(t.settle(9, null, 'x'), -1, 'a seq never added');
  assert.equal(t.settle(1, null, 'a'), 1);
  assert.equal(t.size, 3);
  assert.deepEqual(heard, [[30, 'ok', 'c'], [10, 'ok', 'a']]);
});

test('expire answers the writes past their deadline, oldest first, and stops at the first that is not', () => {
  const { t, heard, done } = table();
  t.startAt(1);
  for (let s = 1; s <= 6; s++) t.add(s, done, s, 0, 100 * s);
  t.settle(2, null, 'b');
  t.expire(350, () => new RequestError('timeout', 'late'));
  assert.deepEqual(heard.map((h) => [h[0], h[1]]), [[2, 'ok'], [1, 'timeout'], [3, 'timeout']]);
  assert.equal(t.size, 3);
  t.failAll(new RequestError('stopped', 'bye'));
  assert.deepEqual(heard.slice(3).map((h) => [h[0], h[1]]), [[4, 'stopped'], [5, 'stopped'], [6, 'stopped']]);
  assert.equal(t.size, 0);
});

test('the ring grows past its first size and keeps every pending write; fits() holds the limits', () => {
  const { t, heard, done } = table(10_000, 16_384);
  t.startAt(7);
  // The first write stays pending while thousands after it are answered: the span grows.
  for (let s = 7; s < 7 + 9_000; s++) t.add(s, done, s, 0, 1e9);
  for (let s = 8; s < 7 + 9_000; s++) assert.ok(t.settle(s, null, 'ok') >= 0);
  assert.equal(t.size, 1);
  assert.ok(t.fits(7_000), 'within countMax and the span');
  assert.ok(!t.fits(7_385), 'the span from the oldest pending write would pass spanMax');
  assert.equal(t.settle(7, null, 'first'), 0);
  assert.ok(t.fits(10_000) && !t.fits(10_001), 'with nothing pending only countMax limits');
  assert.equal(heard.length, 9_000);
});

test('seqs wrap past 2^32', () => {
  const { t, heard, done } = table();
  const first = 2 ** 32 - 3;
  t.startAt(first);
  const seqs = [first, first + 1, first + 2, 0, 1, 2];
  for (const s of seqs) t.add(s >>> 0, done, s, 0, 1e9);
  assert.equal(t.settle(1, null, 'y'), 0);
  assert.equal(t.settle(first + 1, null, 'x'), 0);
  t.failAll(new RequestError('stopped', 'bye'));
  assert.deepEqual(heard.map((h) => h[0]), [1, first + 1, first, first + 2, 0, 2]);
});

test('a leader change counts only when another leader is known, not a spell with none or the same one back', () => {
  const changes = (leaders: number[]): boolean[] => {
    const c = new LeaderChanges();
    return leaders.map((l) => c.seen(l));
  };
  // The first leader known is no change; nor is losing it, nor having it back.
  assert.deepEqual(changes([0, 1, 0, 0, 1, 1]), [false, false, false, false, false, false]);
  // Another one is, straight away or after a spell with none (an election it lost).
  assert.deepEqual(changes([1, 2]), [false, true]);
  assert.deepEqual(changes([1, 0, 2, 0, 2, 1]), [false, false, true, false, false, true]);
});
