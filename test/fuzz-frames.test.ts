// A bounded run of the decoder fuzzer (`npm run fuzz` runs a million frames): random and mutated
// frames, records and batches through both kernel faces and their FrameReaders.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fuzzFrames } from '../src/fuzz/frames.js';
import { REASONS } from '../src/kernels/layout.js';

test('50,000 mutated frames: no throw or trap, every refusal explained, both faces agree, accepted frames re-encode exactly', () => {
  const r = fuzzFrames({ frames: 50_000, seed: 7 });
  assert.equal(r.failureCount, 0, `broken properties:\n${r.failures.join('\n')}`);
  assert.equal(r.frames, 50_000);
  // The run reached past the checksum: valid inputs were accepted and the deeper checks refused some.
  assert.ok(r.accepted.frames > 1000 && r.accepted.records > 100 && r.accepted.batches > 100, JSON.stringify(r.accepted));
  for (const reason of [REASONS[5], REASONS[6], REASONS[7], REASONS[9], REASONS[10], REASONS[13], REASONS[25], REASONS[31]]) {
    assert.ok((r.rejects.get(reason) ?? 0) > 0, `no input was refused for "${reason}"`);
  }
  assert.ok(r.readerFrames > 10_000, `only ${r.readerFrames} frames came out of the FrameReaders`);
});

test('the fuzzer is deterministic for a seed', () => {
  const a = fuzzFrames({ frames: 2000, seed: 3 });
  const b = fuzzFrames({ frames: 2000, seed: 3 });
  assert.deepEqual([...a.rejects].sort(), [...b.rejects].sort());
  assert.deepEqual(a.accepted, b.accepted);
});

test('the fuzzer catches a face that decodes one message type differently', async () => {
  const { loadKernels } = await import('../src/kernels/index.js');
  const { MsgType } = await import('../src/protocol/messages.js');
  const broken = (): ReturnType<typeof loadKernels> => {
    const k = loadKernels('wasm');
    const decode = k.decode.bind(k);
    // A planted bug: Nack frames lose their slot.
    return Object.assign(Object.create(k), {
      decode: (f: Uint8Array) => {
        const m = decode(f);
        return 'type' in m && m.type === MsgType.Nack ? { ...m, slot: 0 } : m;
      },
    });
  };
  const r = fuzzFrames({ frames: 3000, seed: 5, face: broken });
  assert.ok(r.failureCount > 0, 'the planted bug went unnoticed');
  assert.match(r.failures[0], /re-encodes differently/);
});
