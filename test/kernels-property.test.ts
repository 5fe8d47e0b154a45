// Property tests: every WASM kernel against its TypeScript twin (the reference model) on at least
// 10,000 seeded random cases each: same bytes out, same answers, same reasons for bad input.
// A failure prints the seed and case; rerun one seed with PAXLOG_SEED=<seed>.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadKernels, type Kernels } from '../src/kernels/index.js';
import { MESSAGE_TYPES, TestRng, randomMessage } from '../src/kernels/gen.js';
import { crcFrame } from '../src/kernels/js/crc32c.js';
import { HEADER_BYTES } from '../src/kernels/layout.js';

const SEED = Number(process.env.PAXLOG_SEED ?? Date.now() % 0x100000000) >>> 0;
const CASES = 10_000;

const wasm: Kernels = loadKernels('wasm');
const js: Kernels = loadKernels('js');

/** Run `cases` cases, each with its own PRNG; a failure names the seed that reproduces it. */
const property = (cases: number, check: (rng: TestRng, i: number) => void): void => {
  for (let i = 0; i < cases; i++) {
    const seed = (SEED + Math.imul(i, 0x9e3779b9)) >>> 0;
    try {
      check(new TestRng(seed), i);
    } catch (err) {
      (err as Error).message = `case ${i} with PAXLOG_SEED=${SEED} (case seed ${seed}): ${(err as Error).message}`;
      throw err;
    }
  }
};

/** Recompute the CRC of a frame or record whose length field matches, so later checks are reached. */
const fixCrc = (b: Uint8Array): void => {
  if (b.length < 12) return;
  const view = new DataView(b.buffer, b.byteOffset, b.length);
  if (view.getUint32(4, true) === b.length) view.setUint32(8, crcFrame(b, b.length), true);
};

/** A damaged copy of `frame`: bit flips, overwritten bytes, wrong lengths or counts, garbage. */
const mutate = (rng: TestRng, frame: Uint8Array): Uint8Array => {
  let b: Uint8Array = frame.slice();
  switch (rng.int(0, 6)) {
    case 0: // one flipped bit, CRC left as is
      if (b.length > 0) b[rng.int(0, b.length)] ^= 1 << rng.int(0, 8);
      return b;
    case 1: // a few overwritten bytes, CRC fixed so the field checks run
      for (let k = rng.int(1, 4); k > 0 && b.length > 12; k--) b[rng.pick([rng.int(0, b.length), rng.int(12, Math.min(b.length, 60))])] = rng.u32() & 0xff;
      break;
    case 2: { // truncated or extended, length field and CRC made to agree
      const n = rng.bool() ? rng.int(0, b.length + 1) : b.length + rng.int(1, 40);
      const c = new Uint8Array(n);
      c.set(b.subarray(0, Math.min(n, b.length)));
      for (let i = b.length; i < n; i++) c[i] = rng.u32() & 0xff;
      b = c;
      if (n >= 8) new DataView(b.buffer).setUint32(4, n, true);
      break;
    }
    case 3: // a wrong entry count or value length
      if (b.length >= HEADER_BYTES) {
        const view = new DataView(b.buffer);
        if (rng.bool()) view.setUint32(48, rng.pick([rng.int(0, 8), rng.u32()]), true);
        else if (b.length >= HEADER_BYTES + 20) view.setUint32(HEADER_BYTES + 16, rng.pick([rng.int(0, 200), rng.u32()]), true);
      }
      break;
    case 4: // a high word that makes a number unsafe, or a nonzero unused field
      {
        const at = rng.pick([16, 20, 24, 28, 36, 44, 52, 60, 68]);
        if (at + 4 <= b.length) new DataView(b.buffer).setUint32(at, rng.pick([0x200000, 1, 0xffffffff]), true);
      }
      break;
    default: { // garbage with a plausible header
      b = rng.bytes(rng.int(0, 200));
      if (b.length >= 8) {
        b[0] = 1;
        b[1] = rng.pick(MESSAGE_TYPES.concat([0, 14, 31, 200]));
        new DataView(b.buffer).setUint32(4, b.length, true);
      }
    }
  }
  fixCrc(b);
  return b;
};

test(`crc32c: WASM equals the twin on ${CASES} random buffers and seeds`, () => {
  property(CASES, (rng) => {
    const bytes = rng.bytes(rng.pick([rng.int(0, 40), rng.int(0, 600), rng.int(0, 5000)]));
    const seed = rng.bool() ? 0 : rng.u32();
    const at = rng.int(0, bytes.length + 1);
    assert.equal(wasm.crc32c(bytes, seed), js.crc32c(bytes, seed));
    assert.equal(wasm.crc32c(bytes.subarray(at), wasm.crc32c(bytes.subarray(0, at))), js.crc32c(bytes));
  });
});

test(`ballots: WASM equals the twin on ${CASES} random ballots and node ids`, () => {
  property(CASES, (rng) => {
    const round = rng.pick([rng.int(0, 10), rng.u32(), rng.int(0, 137438953471)]);
    const node = rng.int(0, 65536);
    const b = js.ballotPack(round, node);
    assert.equal(wasm.ballotPack(round, node), b);
    assert.equal(wasm.ballotRound(b), round);
    assert.equal(wasm.ballotNode(b), node);
    const other = rng.bool() ? b + rng.int(-3, 4) : rng.int(0, 1 << 30);
    if (other >= 0) assert.equal(wasm.ballotCompare(b, other), js.ballotCompare(b, other));
    const owner = rng.int(0, 65536);
    if (round < 137438953470) {
      const next = js.ballotNextAbove(b, owner);
      assert.equal(wasm.ballotNextAbove(b, owner), next);
      // The definition: owned by `owner`, above b, and no smaller ballot of owner's is above b.
      assert.equal(js.ballotNode(next), owner);
      assert.ok(next > b && next - 65536 <= b);
    }
  });
});

test(`codec: ${CASES} random messages encode to the same bytes in both faces and round-trip`, () => {
  property(CASES, (rng) => {
    const m = randomMessage(rng, undefined, 4, rng.pick([8, 64, 700]));
    const fw = wasm.encode(m).slice();
    const fj = js.encode(m);
    assert.deepEqual(fw, fj);
    assert.deepEqual(wasm.decode(fj), m);
    assert.deepEqual(js.decode(fw), m);
  });
});

test(`codec: ${CASES} damaged frames get the same verdict (message or reason) from both faces`, () => {
  let refused = 0;
  property(CASES, (rng) => {
    const bad = mutate(rng, js.encode(randomMessage(rng, undefined, 3, 40)));
    const w = wasm.decode(bad);
    assert.deepEqual(w, js.decode(bad));
    if ('error' in w) refused++;
  });
  // Most damage must be refused; some (a flipped flag with a fixed CRC) is a valid frame again.
  assert.ok(refused > CASES / 2, `only ${refused} of ${CASES} damaged frames refused`);
});

test(`records: ${CASES} random and damaged log records agree between the faces`, () => {
  property(CASES, (rng) => {
    const r = { position: Math.max(1, rng.safeInt()), ballot: rng.safeInt(), value: rng.bytes(rng.int(0, 300)) };
    const bw = wasm.encodeRecord(r).slice();
    assert.deepEqual(bw, js.encodeRecord(r));
    assert.deepEqual(wasm.decodeRecord(bw), r);
    const bad = mutate(rng, bw);
    assert.deepEqual(wasm.decodeRecord(bad), js.decodeRecord(bad));
  });
});

test(`batches: ${CASES} random and damaged batches decode alike in both faces`, () => {
  property(CASES, (rng) => {
    const commands = Array.from({ length: rng.int(0, 12) }, () => rng.bytes(rng.int(0, 50)));
    const value = js.encodeBatch(commands);
    assert.deepEqual(wasm.encodeBatch(commands), value);
    assert.deepEqual(wasm.decodeBatch(value), commands);
    const bad = value.slice(0, rng.int(0, value.length + 1));
    if (bad.length > 0 && rng.bool()) bad[rng.int(0, Math.min(bad.length, 12))] = rng.u32() & 0xff;
    assert.deepEqual(wasm.decodeBatch(bad), js.decodeBatch(bad));
  });
});

test(`batcher: ${CASES} random push/cut/clear steps give the same batches in both faces`, () => {
  // Small bounds exercise refusals; large ones make the WASM rings grow (and wrap) many times.
  const bounds = [[50, 3000], [2000, 400_000]];
  let bw = wasm.newBatcher(50, 3000);
  let bj = js.newBatcher(50, 3000);
  property(CASES, (rng, i) => {
    if (i % 2000 === 0) {
      const [countMax, bytesMax] = bounds[(i / 2000) % 2];
      bw = wasm.newBatcher(countMax, bytesMax);
      bj = js.newBatcher(countMax, bytesMax);
    }
    const op = rng.int(0, 20);
    if (op < 13) {
      const c = rng.bytes(rng.pick([rng.int(0, 20), rng.int(0, 300), rng.int(0, 3100)]));
      assert.equal(bw.push(c), bj.push(c));
    } else if (op < 19) {
      const cMax = rng.int(1, 20);
      const bMax = rng.pick([rng.int(1, 100), rng.int(1, 2000), 1 << 30]);
      assert.deepEqual(bw.cut(cMax, bMax), bj.cut(cMax, bMax));
    } else {
      bw.clear();
      bj.clear();
    }
    assert.equal(bw.count, bj.count);
    assert.equal(bw.bytes, bj.bytes);
  });
});

test(`slot window: ${CASES} random acks and marks give the same chosen slots and prefix in both faces`, () => {
  const capacity = 64;
  const ww = wasm.newSlotWindow(capacity);
  const wj = js.newSlotWindow(capacity);
  property(CASES, (rng, i) => {
    if (i % 500 === 0) {
      const prefix = rng.pick([0, 1, rng.int(1, 1000), Number.MAX_SAFE_INTEGER - 100_000]);
      const quorum = rng.int(1, 6);
      const required = rng.int(0, 3) === 0 ? 0 : (1 << rng.int(0, 8)) | (quorum > 1 && rng.int(0, 2) === 0 ? 1 << rng.int(0, 8) : 0);
      ww.reset(prefix, quorum, required);
      wj.reset(prefix, quorum, required);
    }
    const p = wj.prefix;
    if (rng.int(0, 10) < 8) {
      const first = rng.int(Math.max(0, p - 5), p + capacity);
      const count = rng.int(0, p + capacity - first + 1);
      const member = rng.int(0, 7);
      const n = wj.ack(member, first, count);
      assert.equal(ww.ack(member, first, count), n);
      assert.deepEqual(ww.newlyChosen.subarray(0, n), wj.newlyChosen.subarray(0, n));
    } else {
      const slot = rng.int(Math.max(0, p - 3), p + capacity);
      ww.markChosen(slot);
      wj.markChosen(slot);
    }
    assert.equal(ww.prefix, wj.prefix);
    assert.equal(ww.chosenAbove, wj.chosenAbove);
    const probe = rng.int(Math.max(0, p - 2), p + capacity + 2);
    assert.equal(ww.isChosen(probe), wj.isChosen(probe));
    assert.equal(ww.ackers(probe), wj.ackers(probe));
  });
});

test(`promise counter and quorum index: ${CASES} random cases agree in both faces`, () => {
  const cw = wasm.newPromiseCounter();
  const cj = js.newPromiseCounter();
  const match = new Float64Array(9);
  property(CASES, (rng) => {
    if (rng.int(0, 8) === 0) {
      const q = rng.int(1, 6);
      cw.reset(q);
      cj.reset(q);
    }
    const member = rng.int(0, 8);
    assert.equal(cw.add(member), cj.add(member));
    assert.equal(cw.count, cj.count);
    const n = rng.int(1, 10);
    for (let i = 0; i < n; i++) match[i] = rng.safeInt();
    const quorum = rng.int(1, n + 1);
    const expected = js.quorumIndex(match, n, quorum);
    assert.equal(wasm.quorumIndex(match, n, quorum), expected);
    // The definition: at least `quorum` entries reach it, and fewer than `quorum` exceed it.
    const m = Array.from(match.subarray(0, n));
    assert.ok(m.filter((x) => x >= expected).length >= quorum && m.filter((x) => x > expected).length < quorum);
  });
});
