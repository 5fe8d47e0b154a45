// The built module itself: what it imports, how its exports pass numbers, and loadKernels.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { loadKernels } from '../src/kernels/index.js';
import { paxlogModule } from '../src/wasm/index.js';

test('the module imports nothing but env.abort', () => {
  assert.deepEqual(WebAssembly.Module.imports(paxlogModule()), [{ module: 'env', name: 'abort', kind: 'function' }]);
});

test('no exported function takes or returns an i64 (which JavaScript would see as a BigInt)', () => {
  const wat = readFileSync(new URL('../../build/paxlog.debug.wat', import.meta.url), 'utf8');
  const exported = [...wat.matchAll(/\(export "(\w+)" \(func (\$[^)\s]+)\)\)/g)];
  assert.ok(exported.length >= 20, `expected the kernels' exports, found ${exported.length}`);
  for (const [, name, fn] of exported) {
    const sig = wat.split('\n').find((line) => line.startsWith(` (func ${fn} `));
    assert.ok(sig !== undefined, `no definition for ${fn}`);
    assert.ok(!/\b(param \$\w+ i64|result i64)/.test(sig), `${name} passes an i64: ${sig}`);
  }
});

test('the module is compiled once per process; each loadKernels("wasm") gets its own memory', () => {
  assert.equal(paxlogModule(), paxlogModule());
  const a = loadKernels('wasm');
  const b = loadKernels();
  assert.equal(a.kind, 'wasm');
  assert.equal(b.kind, 'wasm');
  const fa = a.encode({ type: 12, from: 1, to: 2, readId: 1 });
  b.encode({ type: 12, from: 1, to: 2, readId: 2 });
  assert.deepEqual(a.decode(fa), { type: 12, from: 1, to: 2, readId: 1 });
});

test('loadKernels refuses an unknown kind with a clear error', () => {
  assert.throws(() => loadKernels('gpu' as 'js'), /unknown kernels kind "gpu"/);
});

test('a slot run past the window is a programmer error in both faces', () => {
  for (const k of [loadKernels('wasm'), loadKernels('js')]) {
    const w = k.newSlotWindow(4);
    w.reset(10, 2, 0);
    assert.throws(() => w.ack(0, 12, 3), assert.AssertionError);
    assert.throws(() => w.markChosen(14), assert.AssertionError);
    assert.throws(() => w.ack(32, 10, 1), assert.AssertionError);
    assert.equal(w.ack(0, 1, 12), 0, 'acks below the prefix are ignored');
    assert.equal(w.ackers(10), 0b1, 'member 0 acked slot 10');
    w.ack(31, 11, 1);
    assert.equal(w.ackers(11), 2 ** 31 + 1, 'members 0 and 31 (the top bit, unsigned)');
  }
});

test('decoding damaged bytes placed at the very end of linear memory never reads past them (it would trap)', async () => {
  const { WasmKernels } = await import('../src/wasm/kernels.js');
  const { TestRng, randomMessage } = await import('../src/kernels/gen.js');
  const k = new WasmKernels();
  const js = loadKernels('js');
  const rng = new TestRng(99);
  // Grow the scratch region once so that every later decode runs in place, without a copy.
  k.decode(js.encode(randomMessage(rng, 18, 1, 0)));
  k.decode(new Uint8Array(64 * 1024));
  k.decodeBatch(new Uint8Array(64 * 1024));
  for (let i = 0; i < 3000; i++) {
    const good = js.encode(randomMessage(rng, undefined, 3, 30));
    const bytes = rng.bool() ? good.slice(0, rng.int(0, good.length + 1)) : good.slice();
    if (bytes.length > 0) bytes[rng.int(0, bytes.length)] = rng.u32() & 0xff;
    const mem = k.heap.x.memory.buffer;
    assert.ok(mem.byteLength - bytes.length >= k.heap.heapTop, 'the tail of memory is unused');
    const tail = new Uint8Array(mem, mem.byteLength - bytes.length, bytes.length);
    tail.set(bytes);
    assert.deepEqual(k.decode(tail), js.decode(bytes));
    assert.deepEqual(k.decodeRecord(tail), js.decodeRecord(bytes));
    assert.deepEqual(k.decodeBatch(tail), js.decodeBatch(bytes));
    assert.equal(k.heap.x.memory.buffer, mem, 'decoding in place must not grow memory');
  }
});
