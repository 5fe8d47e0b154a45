// The codec in both faces: every message type round-trips; any single flipped bit, any
// truncation and any extra byte is refused with a reason; the streaming reader finds the same
// frames however the bytes are split; encoding a malformed message is a programmer error.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isDecodeError, loadKernels, type Kernels } from '../src/kernels/index.js';
import { MsgType, type Message } from '../src/protocol/messages.js';
import { FRAME_BYTES_MAX, HEADER_BYTES } from '../src/kernels/layout.js';
import { MESSAGE_TYPES, TestRng, randomMessage } from '../src/kernels/gen.js';

const faces: Kernels[] = [loadKernels('wasm'), loadKernels('js')];
const v = (...xs: number[]): Uint8Array => new Uint8Array(xs);

/** One hand-written example of every message type. */
const examples: Message[] = [
  { type: MsgType.Prepare, from: 1, to: 2, ballot: 65537, fromSlot: 7 },
  { type: MsgType.Promise, from: 2, to: 1, ballot: 65537, fromSlot: 7, chosenPrefix: 5, coverFrom: 7, more: true,
    entries: [{ slot: 7, ballot: 3, value: v(1, 0, 0, 0, 1, 0, 0, 0, 9) }, { slot: 9, ballot: 65536, value: v(0, 0, 0, 0) }] },
  { type: MsgType.Accept, from: 1, to: 3, ballot: 131073, chosenPrefix: 12,
    entries: [{ slot: 12, ballot: 131073, value: v(0, 0, 0, 0) }, { slot: 13, ballot: 131073, value: v(2, 0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0, 0) }] },
  { type: MsgType.Accepted, from: 3, to: 1, ballot: 131073, firstSlot: 12, count: 2 },
  { type: MsgType.Nack, from: 3, to: 1, ballot: 196611, slot: 12 },
  { type: MsgType.Commit, from: 1, to: 2, ballot: 131073, firstSlot: 12, count: 2, chosenPrefix: 14 },
  { type: MsgType.Heartbeat, from: 1, to: 2, ballot: 131073, chosenPrefix: 14, seq: 99 },
  { type: MsgType.HeartbeatAck, from: 2, to: 1, ballot: 131073, chosenPrefix: 13, seq: 99 },
  { type: MsgType.LearnRequest, from: 2, to: 1, firstSlot: 3, count: 4 },
  { type: MsgType.LearnReply, from: 1, to: 2, chosenPrefix: 14, entries: [{ slot: 3, ballot: 65537, value: v(0, 0, 0, 0) }] },
  { type: MsgType.Propose, from: 2, to: 1, ballot: 131073, incarnation: 0xfedcba98, seq: 7, values: [v(1, 2, 3), v(), v(4)] },
  { type: MsgType.ReadIndex, from: 2, to: 1, readId: 42 },
  { type: MsgType.ReadIndexReply, from: 1, to: 2, readId: 42, index: 14, ok: true },
  { type: MsgType.SnapshotRequest, from: 2, to: 1, prefix: 1001, offset: 65536 },
  { type: MsgType.SnapshotChunk, from: 1, to: 2, ballot: 7, prefix: 1001, offset: 65536, total: 65539, values: [v(9, 8, 7)] },
  { type: MsgType.CatchUpRequest, from: 3, to: 1, nonce: 0x7654321 },
  { type: MsgType.CatchUpReply, from: 1, to: 3, ballot: 131073, lastPosition: 120, chosenPrefix: 118, nonce: 0x7654321 },
  { type: MsgType.PrePrepare, from: 2, to: 3, ballot: 196610 },
  { type: MsgType.PrePromise, from: 3, to: 2, ballot: 196610, promised: 131073, granted: true },
  { type: MsgType.RequestVote, from: 1, to: 2, term: 5, lastIndex: 100, lastTerm: 4, preVote: true },
  { type: MsgType.Vote, from: 2, to: 1, term: 5, granted: true, preVote: false },
  { type: MsgType.AppendEntries, from: 1, to: 2, term: 5, prevIndex: 100, prevTerm: 4, commitIndex: 99,
    entries: [{ index: 101, term: 5, value: v(1, 0, 0, 0, 0, 0, 0, 0) }, { index: 102, term: Number.MAX_SAFE_INTEGER, value: v(0, 0, 0, 0) }] },
  { type: MsgType.AppendResult, from: 2, to: 1, term: 5, success: false, index: 90, hintTerm: 3 },
];

test('the examples cover every message type the codec knows', () => {
  assert.deepEqual(examples.map((m) => m.type).sort((a, b) => a - b), [...MESSAGE_TYPES]);
});

for (const k of faces) {
  test(`${k.kind}: every message type round-trips through encode and decode`, () => {
    for (const m of examples) {
      const frame = k.encode(m).slice();
      assert.equal(frame.length, new DataView(frame.buffer).getUint32(4, true), `length field of type ${m.type}`);
      assert.deepEqual(k.decode(frame), m, `type ${m.type}`);
    }
  });

  test(`${k.kind}: a single flipped bit anywhere in a frame is detected`, () => {
    for (const m of examples) {
      const frame = k.encode(m).slice();
      for (let bit = 0; bit < frame.length * 8; bit++) {
        frame[bit >> 3] ^= 1 << (bit & 7);
        const r = k.decode(frame);
        assert.ok(isDecodeError(r), `type ${m.type}: flipping bit ${bit} went unnoticed`);
        frame[bit >> 3] ^= 1 << (bit & 7);
      }
      assert.deepEqual(k.decode(frame), m);
    }
  });

  test(`${k.kind}: a truncated or oversized frame is refused with a reason`, () => {
    for (const m of examples) {
      const frame = k.encode(m).slice();
      for (let n = 0; n < frame.length; n++) {
        const r = k.decode(frame.subarray(0, n));
        assert.ok(isDecodeError(r) && r.error.length > 0, `type ${m.type} truncated to ${n} bytes was accepted`);
        assert.match(r.error, n < HEADER_BYTES ? /shorter than/ : /length field disagrees/);
      }
      for (let extra = 1; extra <= 9; extra++) {
        const longer = new Uint8Array(frame.length + extra);
        longer.set(frame);
        const r = k.decode(longer);
        assert.ok(isDecodeError(r) && /length field disagrees/.test(r.error), `type ${m.type} with ${extra} extra bytes`);
      }
    }
  });

  test(`${k.kind}: a frame longer than FRAME_BYTES_MAX is refused before its checksum is read`, () => {
    const huge = new Uint8Array(FRAME_BYTES_MAX + 1);
    huge[0] = 1;
    huge[1] = MsgType.Accept;
    new DataView(huge.buffer).setUint32(4, huge.length, true);
    assert.deepEqual(k.decode(huge), { error: 'frame longer than frameBytesMax' });
  });

  test(`${k.kind}: random garbage never throws and is refused`, () => {
    const rng = new TestRng(20260101);
    for (let i = 0; i < 5000; i++) {
      const r = k.decode(rng.bytes(rng.int(0, 300)));
      assert.ok(isDecodeError(r), `garbage ${i} decoded as a message`);
    }
  });

  test(`${k.kind}: the streaming reader yields the same frames with the bytes split at every offset`, () => {
    const frames = examples.map((m) => k.encode(m).slice());
    const stream = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
    frames.reduce((at, f) => (stream.set(f, at), at + f.length), 0);
    const drain = (r: ReturnType<Kernels['newFrameReader']>, got: Uint8Array[]): void => {
      for (let f = r.next(); f !== null; f = r.next()) {
        assert.ok(!isDecodeError(f), `reader refused a good stream: ${JSON.stringify(f)}`);
        got.push(f.slice());
      }
    };
    for (let cut = 0; cut <= stream.length; cut++) {
      const r = k.newFrameReader(1 << 20);
      const got: Uint8Array[] = [];
      r.push(stream.subarray(0, cut));
      drain(r, got);
      r.push(stream.subarray(cut));
      drain(r, got);
      assert.deepEqual(got, frames, `split at ${cut}`);
    }
    const r = k.newFrameReader(1 << 20);
    const got: Uint8Array[] = [];
    for (let i = 0; i < stream.length; i++) {
      r.push(stream.subarray(i, i + 1));
      drain(r, got);
    }
    assert.deepEqual(got.map((f) => k.decode(f)), examples);
  });

  test(`${k.kind}: the streaming reader refuses a header that can never become a valid frame`, () => {
    const frame = k.encode(examples[0]).slice();
    const cases: [(b: Uint8Array) => void, RegExp][] = [
      [(b) => { b[0] = 9; }, /version/],
      [(b) => { b[1] = 0; }, /unknown message type/],
      [(b) => new DataView(b.buffer).setUint32(4, 20, true), /shorter than/],
      [(b) => new DataView(b.buffer).setUint32(4, 4096, true), /longer than frameBytesMax/],
    ];
    for (const [damage, reason] of cases) {
      const b = frame.slice();
      damage(b);
      const r = k.newFrameReader(1024);
      r.push(b);
      const got = r.next();
      assert.ok(isDecodeError(got) && reason.test(got.error), `expected ${reason}, got ${JSON.stringify(got)}`);
    }
  });

  test(`${k.kind}: log records round-trip, and a flipped bit or a truncation is refused`, () => {
    const r = { position: 77, ballot: 131073, value: v(1, 0, 0, 0, 3, 0, 0, 0, 1, 2, 3) };
    const bytes = k.encodeRecord(r).slice();
    assert.deepEqual(k.decodeRecord(bytes), r);
    for (let bit = 0; bit < bytes.length * 8; bit++) {
      bytes[bit >> 3] ^= 1 << (bit & 7);
      assert.ok(isDecodeError(k.decodeRecord(bytes)), `record bit ${bit} flip went unnoticed`);
      bytes[bit >> 3] ^= 1 << (bit & 7);
    }
    for (let n = 0; n < bytes.length; n++) assert.ok(isDecodeError(k.decodeRecord(bytes.subarray(0, n))));
  });

  test(`${k.kind}: the no-op is the empty batch and batches round-trip`, () => {
    assert.deepEqual(k.encodeBatch([]), v(0, 0, 0, 0));
    assert.deepEqual(k.decodeBatch(v(0, 0, 0, 0)), []);
    const commands = [v(1), v(), v(2, 3)];
    assert.deepEqual(k.decodeBatch(k.encodeBatch(commands)), commands);
    assert.deepEqual(k.decodeBatch(v(1, 0, 0, 0, 5, 0, 0, 0)), { error: 'command length runs past the end of the batch' });
    assert.deepEqual(k.decodeBatch(v(2, 0, 0, 0, 0, 0, 0, 0)), { error: 'batch count larger than its bytes can hold' });
    assert.deepEqual(k.decodeBatch(v(1, 0)), { error: 'batch shorter than its 4-byte count' });
    // The same batch as places: (start, length) of each command within the batch.
    assert.deepEqual([...(k.decodeBatchPlaces(k.encodeBatch(commands)) as Uint32Array)], [8, 1, 13, 0, 17, 2]);
    assert.deepEqual(k.decodeBatchPlaces(v(1, 0, 0, 0, 5, 0, 0, 0)), { error: 'command length runs past the end of the batch' });
  });

  test(`${k.kind}: encoding a malformed message is a programmer error and throws`, () => {
    const bad: unknown[] = [
      { type: MsgType.Prepare, from: 1, to: 2, ballot: -1, fromSlot: 1 },
      { type: MsgType.Prepare, from: 1, to: 2, ballot: 2 ** 53, fromSlot: 1 },
      { type: MsgType.Prepare, from: 70000, to: 2, ballot: 1, fromSlot: 1 },
      { type: MsgType.Vote, from: 1, to: 2, term: 1, granted: 1, preVote: false },
      { type: 99, from: 1, to: 2 },
      { type: MsgType.Accept, from: 1, to: 2, ballot: 1, chosenPrefix: 1, entries: [{ slot: 1.5, ballot: 1, value: v() }] },
    ];
    for (const m of bad) assert.throws(() => k.encode(m as Message), assert.AssertionError, JSON.stringify(m));
  });

  test(`${k.kind}: a frame of several MiB round-trips (the WASM heap grows and its views follow)`, () => {
    const rng = new TestRng(7);
    const big = rng.bytes(3 * 1024 * 1024);
    const w = k.newSlotWindow(16);
    w.reset(1, 1, 0);
    const m: Message = { type: MsgType.Accept, from: 1, to: 2, ballot: 5, chosenPrefix: 1, entries: [{ slot: 1, ballot: 5, value: big }] };
    const frame = k.encode(m);
    assert.deepEqual(k.decode(frame), m);
    assert.equal(w.ack(0, 1, 2), 2);
    assert.deepEqual(Array.from(w.newlyChosen.subarray(0, 2)), [1, 2]);
    assert.equal(k.crc32c(big), loadKernels('js').crc32c(big));
    assert.deepEqual(k.decode(k.encode(randomMessage(rng, MsgType.Propose))).constructor, Object);
  });
}

for (const k of faces) {
  test(`${k.kind}: decoded values and pushed commands are copies, even from a reused Node Buffer`, () => {
    const m: Message = { type: MsgType.Accept, from: 1, to: 2, ballot: 5, chosenPrefix: 1, entries: [{ slot: 1, ballot: 5, value: v(1, 2, 3) }] };
    const frame = Buffer.from(k.encode(m));
    const decoded = k.decode(frame);
    const record = Buffer.from(k.encodeRecord({ position: 1, ballot: 5, value: v(4, 5) }));
    const decodedRecord = k.decodeRecord(record);
    const batcher = k.newBatcher(10, 100);
    const command = Buffer.from([7, 8]);
    batcher.push(command);
    frame.fill(0);
    record.fill(0);
    command.fill(0);
    assert.deepEqual(decoded, m);
    assert.deepEqual(decodedRecord, { position: 1, ballot: 5, value: v(4, 5) });
    assert.deepEqual(k.decodeBatch(batcher.cut(10, 100)), [v(7, 8)]);
  });
}
