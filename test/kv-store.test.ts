// The KV store (WebAssembly table and records, assembly/kv.ts) against a Map as the model: the
// same results for random operations, its limits on every layout, and its data through growth of
// the table and compaction of the arena. No ports.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeOp, type KvOp } from '../src/kv/ops.js';
import { KvStore, type KvResult } from '../src/kv/store.js';

/** mulberry32: a small seeded generator, so a failure replays. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The model: what the store must answer, from a Map of key to value. */
class Model {
  readonly map = new Map<string, Buffer>();
  bytes = 0;
  constructor(readonly keysMax = Infinity, readonly bytesMax = Infinity) {}

  apply(o: KvOp): KvResult {
    const keyBytes = Buffer.byteLength(o.key);
    const old = this.map.get(o.key);
    if (o.op === 'delete') {
      if (old === undefined) return 'not-found';
      this.map.delete(o.key);
      this.bytes -= keyBytes + old.length;
      return 'ok';
    }
    if (o.op === 'cas' && (old === undefined || !old.equals(o.expect))) return 'mismatch';
    const grow = old === undefined ? keyBytes + o.value.length : o.value.length - old.length;
    if ((old === undefined && this.map.size >= this.keysMax) || this.bytes + grow > this.bytesMax) return 'full';
    this.map.set(o.key, Buffer.from(o.value));
    this.bytes += grow;
    return 'ok';
  }
}

function assertSame(kv: KvStore, model: Model, why: string): void {
  assert.equal(kv.size, model.map.size, `${why}: keys`);
  assert.equal(kv.bytes, model.bytes, `${why}: bytes`);
  for (const [k, v] of model.map) assert.ok(Buffer.from(kv.get(k)!).equals(v), `${why}: value of ${k}`);
}

/** A snapshot's entries, sorted: its order is the table's, which differs between instances (each has its own hash seed). */
function entries(snapshot: Uint8Array): string[] {
  const b = Buffer.from(snapshot);
  const out: string[] = [];
  for (let at = 4; at < b.length;) {
    const keyLen = b.readUInt16LE(at);
    const valueLen = b.readUInt32LE(at + 2 + keyLen);
    out.push(b.subarray(at, at + 6 + keyLen + valueLen).toString('hex'));
    at += 6 + keyLen + valueLen;
  }
  assert.equal(out.length, b.readUInt32LE(0));
  return out.sort();
}

/** A random operation on one of `keys` keys, values of 0..valueMax bytes (several size classes). */
function randomOp(next: () => number, model: Model, keys: number, valueMax: number): KvOp {
  const key = `key-${Math.floor(next() * keys)}${next() < 0.1 ? 'é' : ''}`;
  const value = Buffer.alloc(Math.floor(next() * next() * valueMax), Math.floor(next() * 256));
  const r = next();
  if (r < 0.2) return { op: 'delete', key };
  if (r < 0.4) {
    const held = model.map.get(key);
    return { op: 'cas', key, expect: held !== undefined && next() < 0.7 ? held : Buffer.from('no'), value };
  }
  return { op: 'put', key, value };
}

describe('the KV store against a Map', () => {
  test('random puts, deletes and compare-and-sets give the same results and data', () => {
    const next = rng(7);
    const kv = new KvStore();
    const model = new Model();
    for (let i = 0; i < 40_000; i++) {
      const o = randomOp(next, model, 3000, 3000);
      assert.equal(kv.apply(encodeOp(o)), model.apply(o), `operation ${i}: ${o.op} ${o.key}`);
      if (i % 10_000 === 9_999) assertSame(kv, model, `after ${i + 1} operations`);
    }
    const copy = new KvStore();
    copy.restore(kv.snapshot());
    assertSame(copy, model, 'restored from a snapshot');
  });

  test('the limits refuse the same writes on a store restored from a snapshot (another layout)', () => {
    const limits = { keysMax: 50, bytesMax: 4000 };
    const next = rng(11);
    const a = new KvStore(limits);
    const model = new Model(limits.keysMax, limits.bytesMax);
    let full = 0;
    for (let i = 0; i < 3000; i++) {
      const o = randomOp(next, model, 80, 300);
      const got = a.apply(encodeOp(o));
      assert.equal(got, model.apply(o), `operation ${i}`);
      if (got === 'full') full++;
    }
    assert.ok(full > 100, `the limits were reached (${full} refusals)`);
    const b = new KvStore(limits);
    b.restore(a.snapshot());
    for (let i = 0; i < 3000; i++) {
      const o = randomOp(next, model, 80, 300);
      const want = model.apply(o);
      assert.equal(a.apply(encodeOp(o)), want, `a, operation ${i}`);
      assert.equal(b.apply(encodeOp(o)), want, `b, operation ${i}`);
    }
    assertSame(a, model, 'a');
    assertSame(b, model, 'b');
  });

  test('data survive the table growing and the arena compacting', () => {
    const kv = new KvStore();
    const model = new Model();
    const value = (i: number, n: number): Buffer => Buffer.alloc(n, i % 251);
    // 20,000 records of 1 KiB blocks (about 20 MiB), then most deleted: the free blocks pass half
    // the live bytes plus 16 MiB, so the arena compacts; then new keys in another size class.
    for (let i = 0; i < 20_000; i++) model.apply({ op: 'put', key: `k${i}`, value: value(i, 1000) });
    for (let i = 0; i < 20_000; i++) assert.equal(kv.apply(encodeOp({ op: 'put', key: `k${i}`, value: value(i, 1000) })), 'ok');
    for (let i = 0; i < 20_000; i += 1) {
      if (i % 20 === 0) continue;
      model.apply({ op: 'delete', key: `k${i}` });
      assert.equal(kv.apply(encodeOp({ op: 'delete', key: `k${i}` })), 'ok');
    }
    assertSame(kv, model, 'after the deletes');
    for (let i = 0; i < 5_000; i++) {
      const o: KvOp = { op: 'put', key: `n${i}`, value: value(i, 2000) };
      assert.equal(kv.apply(encodeOp(o)), model.apply(o));
    }
    assertSame(kv, model, 'after new keys');
  });

  test('applyMany gives the results and data of one apply per command, also past what io holds at once', () => {
    const next = rng(3);
    const one = new KvStore();
    const many = new KvStore();
    const model = new Model();
    for (let round = 0; round < 200; round++) {
      // A slot's commands with gaps between them (where envelopes would be), some of them bad.
      const parts: Buffer[] = [];
      const starts: number[] = [];
      const ends: number[] = [];
      let at = 0;
      const count = 1 + Math.floor(next() * 40);
      // Every 50th round carries values of up to 1 MiB: more than io holds at once.
      const valueMax = round % 50 === 49 ? 1 << 20 : 500;
      for (let i = 0; i < count; i++) {
        const bad = next() < 0.05;
        const cmd = bad ? Buffer.from([1, 9, 0, 97]) : Buffer.from(encodeOp(randomOp(next, model, 300, valueMax)));
        parts.push(Buffer.alloc(10, 0xee), cmd);
        starts.push(at + 10);
        ends.push(at + 10 + cmd.length);
        at += 10 + cmd.length;
      }
      const bytes = Buffer.concat(parts);
      const results: KvResult[] = [];
      many.applyMany(bytes, Uint32Array.from(starts), Uint32Array.from(ends), count, round, results);
      for (let i = 0; i < count; i++) {
        const want = one.apply(bytes.subarray(starts[i], ends[i]));
        assert.equal(results[i], want, `round ${round}, command ${i}`);
      }
    }
    assert.deepEqual(entries(many.snapshot()), entries(one.snapshot()), 'the same data');
  });

  test('bad commands change nothing', () => {
    const kv = new KvStore();
    assert.equal(kv.apply(encodeOp({ op: 'put', key: 'a', value: Buffer.from('1') })), 'ok');
    const bad = [
      new Uint8Array([1, 0, 0]),             // empty key
      new Uint8Array([1, 5, 0, 97]),          // key runs past the end
      new Uint8Array([1, 1, 0, 0xff]),        // key not UTF-8
      new Uint8Array([2, 1, 0, 97, 0]),       // delete with trailing bytes
      new Uint8Array([3, 1, 0, 97, 9, 0, 0]), // cas whose expect length runs past the end
      new Uint8Array([9, 1, 0, 97]),          // no such operation
    ];
    for (const b of bad) assert.equal(kv.apply(b), 'bad', `bytes ${Buffer.from(b).toString('hex')}`);
    assert.equal(kv.size, 1);
    assert.equal(Buffer.from(kv.get('a')!).toString(), '1');
  });

  test('keys made to collide under an unseeded FNV-1a do not pile up in one probe run (no quadratic stall on every node)', () => {
    // Two 6-byte blocks that lead FNV-1a (offset basis 0x811c9dc5) to the same state, then a pair
    // that keeps that state: every key of one first block and 11 later blocks has the same hash.
    // Found in seconds by birthday search; 2^17 such keys stalled every replica for about a minute.
    const keys: string[] = [];
    for (let m = 0; m < 1 << 12; m++) {
      let key = (m & 1) === 0 ? 'h9Gcaa' : 'THadaa';
      for (let i = 1; i < 12; i++) key += ((m >> i) & 1) === 0 ? 'f2Gcaa' : 'JCadaa';
      keys.push(key);
    }
    const kv = new KvStore();
    for (const key of keys) assert.equal(kv.apply(encodeOp({ op: 'put', key, value: Buffer.from('v') })), 'ok');
    assert.equal(kv.size, keys.length);
    // The table (assembly/kv.ts): entries of [hash u32][record u32]; a lookup probes one run of used entries.
    const x = (kv as unknown as { store: { x: { memory: WebAssembly.Memory; tableAt(): number; tableCapacity(): number } } }).store.x;
    const table = Buffer.from(x.memory.buffer, x.tableAt() >>> 0, 8 * x.tableCapacity());
    let run = 0;
    let longest = 0;
    for (let j = 0; j < 2 * x.tableCapacity(); j++) {
      run = table.readUInt32LE(8 * (j % x.tableCapacity()) + 4) === 0 ? 0 : run + 1;
      longest = Math.max(longest, run);
    }
    assert.ok(longest < 200, `the longest probe run is ${longest} entries for ${keys.length} keys`);
    for (const key of keys) assert.equal(Buffer.from(kv.get(key)!).toString(), 'v');
  });
});
