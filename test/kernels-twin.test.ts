// The TypeScript twin on its own: known answers that do not depend on the WASM build.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isDecodeError, loadKernels } from '../src/kernels/index.js';
import { MsgType, type Message } from '../src/protocol/messages.js';

const k = loadKernels('js');

test('crc32c gives the standard check value for "123456789" and continues from a seed', () => {
  const bytes = new TextEncoder().encode('123456789');
  assert.equal(k.crc32c(bytes), 0xe3069283);
  assert.equal(k.crc32c(bytes.subarray(4), k.crc32c(bytes.subarray(0, 4))), 0xe3069283);
  assert.equal(k.crc32c(new Uint8Array(32)), 0x8a9136aa);
});

test('ballots pack, unpack, compare and find the next one owned by a node', () => {
  const b = k.ballotPack(7, 3);
  assert.equal(b, 7 * 65536 + 3);
  assert.equal(k.ballotRound(b), 7);
  assert.equal(k.ballotNode(b), 3);
  assert.equal(k.ballotCompare(b, b + 1), -1);
  assert.equal(k.ballotNextAbove(b, 5), k.ballotPack(7, 5));
  assert.equal(k.ballotNextAbove(b, 2), k.ballotPack(8, 2));
  assert.equal(k.ballotNextAbove(b, 3), k.ballotPack(8, 3));
});

test('an Accept round-trips and a flipped bit is refused', () => {
  const m: Message = { type: MsgType.Accept, from: 1, to: 2, ballot: 65537, chosenPrefix: 4,
    entries: [{ slot: 5, ballot: 65537, value: k.encodeBatch([new Uint8Array([1, 2, 3])]) }] };
  const frame = k.encode(m).slice();
  assert.deepEqual(k.decode(frame), m);
  frame[60] ^= 1;
  assert.ok(isDecodeError(k.decode(frame)));
});

test('the slot window reports holes and moves the prefix past chosen slots', () => {
  const w = k.newSlotWindow(8);
  w.reset(1, 2, 0);
  assert.equal(w.ack(0, 2, 2), 0);
  assert.equal(w.ack(1, 2, 2), 2);
  assert.deepEqual(Array.from(w.newlyChosen.subarray(0, 2)), [2, 3]);
  assert.equal(w.prefix, 1);
  assert.equal(w.chosenAbove, 2);
  w.ack(0, 1, 1);
  assert.equal(w.ack(2, 1, 1), 1);
  assert.equal(w.prefix, 4);
  assert.equal(w.chosenAbove, 0);
});

test('a slot is chosen only with every required member among its acks', () => {
  const w = k.newSlotWindow(8);
  w.reset(1, 2, 1 << 0);
  assert.equal(w.ack(1, 1, 2), 0);
  assert.equal(w.ack(2, 1, 2), 0, 'a quorum without the required member chooses nothing');
  assert.equal(w.ack(0, 2, 1), 1);
  assert.deepEqual(Array.from(w.newlyChosen.subarray(0, 1)), [2]);
  assert.equal(w.prefix, 1);
  assert.equal(w.ack(0, 1, 1), 1);
  assert.equal(w.prefix, 3);
  assert.throws(() => w.reset(1, 1, 0b11), /at most quorum 1/);
});
