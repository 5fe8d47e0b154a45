// The key-value state machine. Every node applies the same operations in the same slot order,
// so every node holds the same data. apply() is deterministic: its outcome depends only on the
// data and the operation, never on local configuration, time or memory layout (replicas must not
// diverge).
//
// The data live in WebAssembly (assembly/kv.ts, one instance and memory per store): a hash table
// and records of key and value bytes. A JavaScript Map of byte strings was the largest cost of a
// node under load (lookups missing the cache, and a string per value for the garbage collector).
// This face checks each command's key (the one UTF-8 check, Node's), copies the command in, and
// reads values and snapshots out of the instance's memory.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import type { StateMachine } from '../node/state-machine.js';
import { SNAPSHOT_BYTES_MAX } from '../protocol/types.js';
import { instantiate, wasmModule } from '../wasm/heap.js';
import { isUtf8Range, keyBytesMax, KvOpCode, valueBytesMax } from './ops.js';

/** What applying one operation did. */
export type KvResult =
  | 'ok'          // put done, delete removed the key, cas swapped
  | 'not-found'   // delete of an absent key
  | 'mismatch'    // cas whose expected value differed (or the key was absent)
  | 'full'        // refused: the store is at keysMax or bytesMax (same on every node)
  | 'bad';        // the command bytes did not decode (nothing changed)

/** The result codes of assembly/kv.ts's apply(), in order. */
const results: readonly KvResult[] = ['ok', 'not-found', 'mismatch', 'full', 'bad'];

/** The store's bounds. Every replica must use the same (the server always uses these). */
export const keysMax = 16 * 1024 * 1024;
/** Key and value bytes held at most: so that a full store's snapshot fits SNAPSHOT_BYTES_MAX. */
export const bytesMax = 896 * 1024 * 1024;
/** A snapshot's size: [count u32], then per key [keyLen u16][valueLen u32] besides its bytes. */
const snapshotSize = (keys: number, bytes: number): number => 4 + 6 * keys + bytes;
assert.ok(snapshotSize(keysMax, bytesMax) <= SNAPSHOT_BYTES_MAX, 'a full store snapshots within SNAPSHOT_BYTES_MAX');

/** The largest snapshot snapshotAsync writes at once (see there). */
const syncSnapshotBytesDefault = 16 * 1024 * 1024;

/** Table entries snapshotAsync writes per turn of the event loop (at most half are in use). */
const snapshotSliceEntries = 16 * 1024;

/** The exports of build/kv.wasm (see assembly/kv.ts). Pointers are u32 and may read negative: use >>> 0. */
interface KvExports {
  memory: WebAssembly.Memory;
  init(keysMax: number, bytesMax: number, hashSeed: number): number;
  ioBytes(): number;
  keys(): number;
  bytes(): number;
  tableAt(): number;
  tableCapacity(): number;
  arenaStart(): number;
  arenaEnd(): number;
  apply(at: number, n: number): number;
  lookup(n: number): number;
  serialize(start: number): number;
  serialized(): number;
}

/**
 * A record in the instance's memory (assembly/kv.ts): [size u32][hash u32][valueLen u32][keyLen u16]
 * [kind u16], then the key, then the value.
 */
const recordValueLenAt = 8;
const recordKeyLenAt = 12;
const recordHeaderBytes = 16;

/** One instance of build/kv.wasm holding an empty store. */
class KvInstance {
  readonly x: KvExports;
  /** Where commands and keys are copied in. */
  readonly io: number;
  readonly ioBytes: number;
  /** A view of all memory; re-made when memory.grow() detaches the old one. */
  private view: Buffer;

  constructor(readonly keysMax: number, readonly bytesMax: number) {
    this.x = instantiate(wasmModule('kv.wasm'), 'KV store') as unknown as KvExports;
    // A seed of its own per instance: the table's layout (and so a snapshot's order) differs
    // between replicas, which no result depends on (assembly/kv.ts).
    this.io = this.x.init(keysMax, bytesMax, crypto.randomBytes(4).readUInt32LE(0)) >>> 0;
    this.ioBytes = this.x.ioBytes();
    this.view = Buffer.from(this.x.memory.buffer);
  }

  mem(): Buffer {
    if (this.view.length === 0) this.view = Buffer.from(this.x.memory.buffer);
    return this.view;
  }

  /** Applies the n bytes copied in at io + at; a code of `results`. */
  apply(at: number, n: number): KvResult {
    const r = this.x.apply(at, n);
    // memory.grow failed: the host has no memory to give. Not an input: stop rather than diverge.
    if (r < 0) throw new Error('the KV store could not grow its WebAssembly memory');
    return results[r];
  }
}

/**
 * Whether the command bytes[start, end) has a well-formed key (length in range, UTF-8): the checks
 * the WASM side leaves to this face. Longer than io holds is longer than any operation the limits allow.
 */
function wellKeyed(b: Uint8Array, start: number, end: number, ioBytes: number): boolean {
  const n = end - start;
  if (n < 3 || n > ioBytes) return false;
  const keyLen = b[start + 1] | (b[start + 2] << 8);
  return keyLen !== 0 && keyLen <= keyBytesMax && 3 + keyLen <= n && isUtf8Range(b, start + 3, start + 3 + keyLen);
}

/**
 * Writes the records of table entries [from, to) as [keyLen u16][key][valueLen u32][value] into
 * `out` at `at`; returns where the next goes. `mem` holds the table at `table` and the records at
 * their addresses minus `base` (0 for the live memory, arenaStart for a copy of the arena).
 */
function writeEntries(mem: Buffer, base: number, table: number, from: number, to: number, out: Buffer, at: number): number {
  for (let j = from; j < to; j++) {
    const rec = mem.readUInt32LE(table + 8 * j + 4);
    if (rec === 0) continue;
    const r = rec - base;
    const valueLen = mem.readUInt32LE(r + recordValueLenAt);
    const keyLen = mem.readUInt16LE(r + recordKeyLenAt);
    const key = r + recordHeaderBytes;
    at = out.writeUInt16LE(keyLen, at);
    at += mem.copy(out, at, key, key + keyLen);
    at = out.writeUInt32LE(valueLen, at);
    at += mem.copy(out, at, key + keyLen, key + keyLen + valueLen);
  }
  return at;
}

export class KvStore implements StateMachine<KvResult> {
  private store: KvInstance;

  /**
   * Limits other than keysMax and bytesMax are for tests: every replica must use the same.
   * syncSnapshotBytesMax: see snapshotAsync (tests set it to 0 to test the sliced path).
   */
  constructor(limits: { keysMax: number; bytesMax: number } = { keysMax, bytesMax }, private readonly syncSnapshotBytesMax = syncSnapshotBytesDefault) {
    assert.ok(limits.keysMax >= 1 && limits.keysMax <= keysMax && limits.bytesMax >= 1 && limits.bytesMax <= bytesMax, 'limits within keysMax and bytesMax');
    this.store = new KvInstance(limits.keysMax, limits.bytesMax);
  }

  get size(): number {
    return this.store.x.keys();
  }

  get bytes(): number {
    return this.store.x.bytes() >>> 0;
  }

  /** A local read of the applied state (the caller decides whether it is linearizable). A copy. `key` as a string or its UTF-8 bytes. */
  get(key: string | Uint8Array): Uint8Array | undefined {
    const k = typeof key === 'string' ? Buffer.from(key, 'utf8') : key;
    if (k.byteLength === 0 || k.byteLength > keyBytesMax) return undefined;
    const mem = this.store.mem();
    mem.set(k, this.store.io);
    const rec = this.store.x.lookup(k.byteLength) >>> 0;
    if (rec === 0) return undefined;
    const value = rec + recordHeaderBytes + mem.readUInt16LE(rec + recordKeyLenAt);
    return Buffer.from(mem.subarray(value, value + mem.readUInt32LE(rec + recordValueLenAt)));
  }

  apply(command: Uint8Array): KvResult {
    if (!wellKeyed(command, 0, command.byteLength, this.store.ioBytes)) return 'bad';
    this.store.mem().set(command, this.store.io);
    return this.store.apply(0, command.byteLength);
  }

  /** StateMachine.applyMany: the slot's commands copied in at once when they fit io together. */
  applyMany(bytes: Uint8Array, starts: Uint32Array, ends: Uint32Array, n: number, _slot: number, results: KvResult[]): void {
    if (n === 0) return;
    const lo = starts[0];
    const hi = ends[n - 1];
    if (hi - lo > this.store.ioBytes) {
      for (let i = 0; i < n; i++) results[i] = this.apply(bytes.subarray(starts[i], ends[i]));
      return;
    }
    this.store.mem().set(bytes.subarray(lo, hi), this.store.io);
    for (let i = 0; i < n; i++) {
      const start = starts[i];
      const end = ends[i];
      assert.ok(start >= lo && end >= start && end <= hi, 'commands in order within the slot');
      results[i] = wellKeyed(bytes, start, end, this.store.ioBytes) ? this.store.apply(start - lo, end - start) : 'bad';
    }
  }

  /**
   * [count u32] then per entry [keyLen u16][key][valueLen u32][value], in table order (which differs
   * between instances holding the same data: see KvInstance): written by
   * WebAssembly into io a chunk at a time, each chunk copied out at once.
   */
  snapshot(): Uint8Array {
    const out = this.snapshotBuffer();
    const { x, io } = this.store;
    const capacity = x.tableCapacity();
    let at = 4;
    for (let j = 0; j < capacity;) {
      j = x.serialize(j);
      const n = x.serialized();
      at += this.store.mem().copy(out, at, io, io + n);
    }
    assert.equal(at, out.byteLength);
    return out;
  }

  /**
   * snapshot() of the state now, without holding the node up for long. A snapshot of at most
   * syncSnapshotBytesMax is written at once (13 to 22 ms for 11 MB here). A bigger one is written
   * a slice of entries per turn of the event loop from a copy of the arena (records and table)
   * made at the call: one memcpy.
   */
  snapshotAsync(): Promise<Uint8Array> {
    if (snapshotSize(this.size, this.bytes) <= this.syncSnapshotBytesMax) return Promise.resolve(this.snapshot());
    const x = this.store.x;
    const base = x.arenaStart() >>> 0;
    const arena = Buffer.from(this.store.mem().subarray(base, x.arenaEnd() >>> 0));
    const table = (x.tableAt() >>> 0) - base;
    const capacity = x.tableCapacity();
    const out = this.snapshotBuffer();
    let at = 4;
    let j = 0;
    return new Promise((resolve) => {
      const slice = (): void => {
        const end = Math.min(capacity, j + snapshotSliceEntries);
        at = writeEntries(arena, base, table, j, end, out, at);
        j = end;
        if (j < capacity) return void setImmediate(slice);
        assert.equal(at, out.byteLength);
        resolve(out);
      };
      slice();
    });
  }

  /** A snapshot's buffer with its count written: its size follows from the count and bytes. */
  private snapshotBuffer(): Buffer {
    const out = Buffer.allocUnsafeSlow(snapshotSize(this.size, this.bytes));
    out.writeUInt32LE(this.size, 0);
    return out;
  }

  /** Replace the state with a snapshot; throws on malformed bytes (leaving the state as it was). */
  restore(bytes: Uint8Array): void {
    const b = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const fail = (why: string): never => {
      throw new Error(`bad KV snapshot: ${why}`);
    };
    if (b.byteLength < 4) fail('shorter than its header');
    const count = b.readUInt32LE(0);
    const next = new KvInstance(this.store.keysMax, this.store.bytesMax);
    if (count > next.keysMax) fail(`${count} keys`);
    let at = 4;
    for (let i = 0; i < count; i++) {
      if (at + 2 > b.byteLength) fail('truncated key length');
      const keyLen = b.readUInt16LE(at);
      if (keyLen === 0 || keyLen > keyBytesMax || at + 2 + keyLen + 4 > b.byteLength) fail('bad key');
      if (!isUtf8Range(b, at + 2, at + 2 + keyLen)) fail('key is not UTF-8');
      const valueAt = at + 2 + keyLen + 4;
      const valueLen = b.readUInt32LE(valueAt - 4);
      if (valueLen > valueBytesMax || valueAt + valueLen > b.byteLength) fail('bad value');
      // Put the entry: [1][keyLen u16][key][value].
      const mem = next.mem();
      mem[next.io] = KvOpCode.Put;
      mem.writeUInt16LE(keyLen, next.io + 1);
      b.copy(mem, next.io + 3, at + 2, at + 2 + keyLen);
      b.copy(mem, next.io + 3 + keyLen, valueAt, valueAt + valueLen);
      if (next.apply(0, 3 + keyLen + valueLen) !== 'ok') fail('more than the store holds');
      // A store never holds a key twice; a put of a held key would not add one.
      if (next.x.keys() !== i + 1) fail('a key appears twice');
      at = valueAt + valueLen;
    }
    if (at !== b.byteLength) fail('trailing bytes');
    this.store = next;
  }
}
